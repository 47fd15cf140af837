"""``vm2mail status``: per mailbox counts and last voicemail from IMAP, key health, spool and failures."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from vm2mail.cli.common import OK, PROBLEMS, Subparsers, command, load_unchecked, table
from vm2mail.cli.spool import ALL_STATES, recent_failures
from vm2mail.config import Config
from vm2mail.crypto.keyhealth import OK as KEY_OK
from vm2mail.crypto.keyhealth import UNUSABLE, by_mailbox, check_keys, worst
from vm2mail.errors import Vm2mailError
from vm2mail.mailstore.store import ImapStore
from vm2mail.mailstore.voicemails import Voicemails, counts
from vm2mail.pipeline.batch import gateway_pid, open_spool


async def _mailboxes(config: Config) -> list[dict[str, Any]]:
    health = await asyncio.to_thread(check_keys, config)
    store = ImapStore(config.imap)
    voicemails = Voicemails(store)
    result = []
    try:
        for box in config.mailboxes.values():
            # A group has no keys of its own: each copy is encrypted to the member's keys.
            owners = box.members if box.is_group else (box.id,)
            keys = [k for owner in owners for k in by_mailbox(health, owner)]
            entry: dict[str, Any] = {
                "id": box.id,
                "name": box.name,
                "group": list(box.members) or None,
                "folder": None if box.is_group else box.folder,
                "counts": None,
                "last": None,
                "keys": [k.to_dict() for k in keys],
                "key_state": worst(keys) if keys else None,
                "error": None,
            }
            result.append(entry)
            if box.is_group:
                continue  # a group's copies live in its members' folders, listed there
            try:
                listing = await voicemails.listing(box)
            except Vm2mailError as exc:
                entry["error"] = f"IMAP: {exc}"
                continue
            c = counts(listing)
            entry["counts"] = {"new": c.new, "heard": c.heard, "saved": c.saved, "total": c.total}
            if listing.entries:
                last = max(listing.entries, key=lambda e: (e.date, e.uid))
                entry["last"] = {
                    "date": last.date.astimezone(box.tz).isoformat(timespec="seconds"),
                    "caller": last.caller,
                    "caller_name": last.caller_name,
                    "kind": last.kind,
                }
    finally:
        await store.close()
    playback = [h for h in health if h.mailbox is None]
    if playback:
        result.append(
            {
                "id": "(playback)",
                "name": "gateway playback key",
                "keys": [h.to_dict() for h in playback],
                "key_state": worst(playback),
            }
        )
    return result


def gather(config: Config) -> dict[str, Any]:
    spool = open_spool(config.server.spool_dir)
    depth = {state: sum(1 for _ in (spool.root / state).glob("*.json")) for state in ALL_STATES}
    return {
        "gateway_pid": gateway_pid(config),
        "mailboxes": asyncio.run(_mailboxes(config)),
        "spool": depth,
        "recent_failures": recent_failures(spool),
    }


def _keys_text(entry: dict[str, Any]) -> str:
    keys = entry.get("keys") or []
    if not keys:
        return "none (plain)"
    parts = []
    for key in keys:
        fpr = key["fingerprint"][-16:]
        if entry.get("group"):
            fpr = f"{key['mailbox']}: {fpr}"  # the member whose copies use it
        if key["state"] == KEY_OK:
            parts.append(f"{fpr} ok" + (f" until {key['expires'][:10]}" if key["expires"] else ""))
        elif key["state"] == UNUSABLE:
            parts.append(f"{fpr} UNUSABLE: {key['problem']}")
        else:
            parts.append(f"{fpr} EXPIRES {key['expires'][:10]}")
    return "; ".join(parts)


def render(report: dict[str, Any]) -> str:
    rows = [("MAILBOX", "NAME", "NEW", "HEARD", "SAVED", "TOTAL", "LAST VOICEMAIL", "KEYS")]
    for entry in report["mailboxes"]:
        c = entry.get("counts")
        numbers = (str(c["new"]), str(c["heard"]), str(c["saved"]), str(c["total"])) if c else ("-",) * 4
        if entry.get("error"):
            last = entry["error"]
        elif entry.get("group"):
            last = f"group of {', '.join(entry['group'])}"
        elif entry.get("last"):
            who = entry["last"]["caller_name"] or entry["last"]["caller"] or "unknown caller"
            last = f"{entry['last']['date'][:16].replace('T', ' ')} {who}"
        else:
            last = "-"
        rows.append((entry["id"], entry["name"], *numbers, last, _keys_text(entry)))
    pid = report["gateway_pid"]
    lines = [
        table(rows),
        "",
        f"gateway: {'running, pid ' + str(pid) if pid else 'not running (no live pid file)'}",
        "spool: " + ", ".join(f"{state} {n}" for state, n in report["spool"].items()),
    ]
    if report["recent_failures"]:
        lines.append("recent failures:")
        for failure in report["recent_failures"]:
            when, job, box = failure["failed_at"], failure["id"], failure["mailbox"]
            lines.append(f"  {when}  {job}  mailbox {box}: {failure['reason']}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    report = gather(config)
    print(json.dumps(report, indent=1) if args.json else render(report))
    problems = any(e.get("error") or e.get("key_state") == UNUSABLE for e in report["mailboxes"])
    return PROBLEMS if problems else OK


def register(sub: Subparsers) -> None:
    cmd = command(
        sub,
        "status",
        "per mailbox: voicemail counts and the last one (from IMAP), key health; spool depth and recent "
        "failures; exit 1 when a mailbox cannot be read or a key is unusable",
        cmd_status,
    )
    cmd.add_argument("--json", action="store_true", help="machine-readable output")
