"""The inbox page and its static files, with Subresource Integrity hashes and a strict CSP.

The browser libraries (OpenPGP.js, postal-mime) come from the npm registry pinned in package-lock.json;
``make deps`` copies their dist files into ``static/vendor/`` so the wheel ships them. Every script is
loaded as an ES module whose integrity the import map pins (sha384 of the very bytes served), and the
CSP allows no inline script but that import map, by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/inbox/static/"
VENDOR_ENTRIES = {  # import specifier -> file under static/
    "openpgp": "vendor/openpgp.min.mjs",
    "postal-mime": "vendor/postal-mime/postal-mime.js",
}
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


@dataclass
class Assets:
    """Every static file read once at start (they never change while the gateway runs)."""

    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # relative path -> (data, type)
    page: bytes = b""
    csp: str = ""
    missing: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, root: Path = STATIC) -> Assets:
        assets = cls()
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in (*_TYPES, ".html"):
                kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "text/plain"
                assets.files[path.relative_to(root).as_posix()] = (path.read_bytes(), kind)
        assets.missing = [name for name in VENDOR_ENTRIES.values() if name not in assets.files]
        if assets.missing:
            log.error("web inbox: %s missing; run `make deps` (npm ci)", ", ".join(assets.missing))
        template = assets.files.pop("index.html", (b"", ""))[0].decode("utf-8")
        integrity = {
            PREFIX + name: sri(data) for name, (data, kind) in assets.files.items() if "javascript" in kind
        }
        importmap = json.dumps(
            {
                "imports": {spec: PREFIX + name for spec, name in VENDOR_ENTRIES.items()},
                "integrity": integrity,
            },
            indent=1,
            sort_keys=True,
        )
        digest = base64.b64encode(hashlib.sha256(importmap.encode("utf-8")).digest()).decode("ascii")
        css = assets.files.get("inbox.css", (b"", ""))[0]
        assets.page = (
            template.replace("{{importmap}}", importmap)
            .replace("{{app_integrity}}", integrity.get(PREFIX + "app.js", ""))
            .replace("{{css_integrity}}", sri(css))
            .encode("utf-8")
        )
        # No 'unsafe-inline' nor 'unsafe-eval' anywhere; the one inline element is the import map,
        # allowed by its SHA-256 (CSP Level 3 hash source). Audio plays from blob: URLs (decrypted
        # in the page) or from our own /inbox/api/ (server playback); recording needs mediastream.
        assets.csp = "; ".join(
            (
                "default-src 'self'",
                f"script-src 'self' 'sha256-{digest}'",
                "style-src 'self'",
                "img-src 'self' data:",
                "media-src 'self' blob: mediastream:",
                "connect-src 'self'",
                "object-src 'none'",
                "base-uri 'none'",
                "form-action 'self'",
                "frame-ancestors 'none'",
            )
        )
        return assets
