"""The inbox page pins every script by SRI; the CSP allows no inline script but its import map."""

from __future__ import annotations

import base64
import hashlib
import json
import re

from vm2mail.web.assets import PREFIX, VENDOR_ENTRIES, Assets


def test_page_pins_every_script_and_csp_allows_only_the_import_map() -> None:
    assets = Assets.load()
    assert assets.missing == [], "run `make vendor` (npm ci) first"
    page = assets.page.decode()
    [importmap] = re.findall(r'<script type="importmap">(.*?)</script>', page, re.DOTALL)
    mapping = json.loads(importmap)
    for spec, name in VENDOR_ENTRIES.items():
        assert mapping["imports"][spec] == PREFIX + name
    scripts = {name for name, (_, kind) in assets.files.items() if "javascript" in kind}
    assert {"app.js", "pgp.js", "i18n.js", *VENDOR_ENTRIES.values()} <= scripts
    for name in scripts:
        data = assets.files[name][0]
        digest = base64.b64encode(hashlib.sha384(data).digest()).decode()
        assert mapping["integrity"][PREFIX + name] == f"sha384-{digest}", name
    app_digest = mapping["integrity"][PREFIX + "app.js"]
    assert f'src="/inbox/static/app.js" integrity="{app_digest}"' in page
    css = base64.b64encode(hashlib.sha384(assets.files["inbox.css"][0]).digest()).decode()
    assert f'integrity="sha384-{css}"' in page

    inline = base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode()
    directives = dict(d.strip().split(" ", 1) for d in assets.csp.split(";"))
    assert directives["script-src"] == f"'self' 'sha256-{inline}'"
    assert directives["default-src"] == "'self'"
    assert "unsafe" not in assets.csp
    assert page.count("<script") == 2  # the import map and the app module; no other inline script
