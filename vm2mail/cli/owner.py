"""Admin commands that write to the spool or gpg home run as the gateway's user, not leaving root files."""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path

from vm2mail.config import Config
from vm2mail.errors import Vm2mailError


def _existing(path: Path) -> Path:
    """``path``, or its nearest existing parent (a spool not made yet belongs to whoever owns that)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def run_as_spool_owner(config: Config) -> None:
    """Continue as the owner of ``server.spool_dir``: as root, drop to that user (and its group);
    as anybody else, refuse with a message that says whom to run as.

    A gateway runs as its own user; files that ``import-asterisk``, ``reconcile``, ``spool retry`` or
    ``keys import`` made as root would be unreadable to it (jobs stuck, gpg refusing a keyring it
    does not own).
    """
    spool = _existing(config.server.spool_dir)
    info = spool.stat()
    me = os.geteuid()
    if me == info.st_uid:
        return
    try:
        owner: pwd.struct_passwd | None = pwd.getpwuid(info.st_uid)
    except KeyError:
        owner = None
    owner_name = owner.pw_name if owner is not None else f"uid {info.st_uid}"
    if me != 0:
        raise Vm2mailError(
            f"run this command as {owner_name}, the owner of the spool {spool} "
            f"(you are {_name(me)}): files it writes must stay usable by the gateway, "
            f"e.g. sudo -u {owner_name} vm2mail ..."
        )
    if owner is not None:
        os.setgroups(os.getgrouplist(owner.pw_name, info.st_gid))
    else:
        os.setgroups([info.st_gid])
    os.setgid(info.st_gid)
    os.setuid(info.st_uid)
    # gpg and others look at HOME; root's would not be readable any more.
    os.environ["HOME"] = owner.pw_dir if owner is not None else str(spool)
    print(f"vm2mail: running as {owner_name}, the owner of the spool {spool}", file=sys.stderr)
