"""Packaging beyond what pyproject.toml can say: the top-level templates/ and demo sample go in the wheel.

``templates/`` stays at the repository's top level (admins copy and edit it there) and is installed
as the package ``vm2mail.templates``; the demo's sample recording likewise as ``vm2mail.devstack.sample``.
Everything else (metadata, dependencies, tool settings) is in pyproject.toml.
"""

from pathlib import Path

from setuptools import find_packages, setup

DATA_PACKAGES = {"vm2mail.templates": "templates"}
if Path("deploy/demo").is_dir():  # the demo's recording; a production image may build without it
    DATA_PACKAGES["vm2mail.devstack.sample"] = "deploy/demo"
# Subdirectories with identifier names (email/, sms/, prompts/) are importable, so setuptools wants
# them listed too; language directories (en-US) are plain data of their parent.
TEMPLATE_DIRS = [
    "vm2mail.templates." + ".".join(d.relative_to("templates").parts)
    for d in sorted(Path("templates").rglob("*"))
    if d.is_dir() and all(part.isidentifier() for part in d.relative_to("templates").parts)
]

setup(
    packages=[*find_packages(include=["vm2mail*"]), *DATA_PACKAGES, *TEMPLATE_DIRS],
    package_dir=DATA_PACKAGES,
    package_data={
        "vm2mail.templates": ["**/*"],
        "vm2mail.devstack.sample": ["*.wav"],
        # The web inbox's page and browser libraries (vendor/ is filled by `make vendor` from npm).
        "vm2mail.web": [
            "static/*.html",
            "static/*.js",
            "static/*.css",
            "static/vendor/*",
            "static/vendor/postal-mime/*",
        ],
    },
)
