"""Generate docs/settings.md, the configuration reference, from ``thorn_core.Settings``.

``python tools/settings_reference.py --write`` rewrites the page; ``--check`` exits 1 if it
is out of date (``nox -s docs`` and a test run the check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import attrs

from thorn_core import Settings
from thorn_core.settings import PREFIX

PAGE = Path(__file__).resolve().parents[1] / "docs" / "settings.md"

HEADER = """\
# Configuration reference

<!-- Generated from thorn_core.Settings by tools/settings_reference.py; do not edit by hand:
change the field's metadata["doc"] and run `python tools/settings_reference.py --write`. -->

Every option is a `THORN_*` key in the mapping given to `Thorn(...)`, in Django settings or in
Flask config. Keys that do not start with `THORN_` are ignored; an unknown `THORN_` key or a
value of the wrong type raises `ImproperlyConfigured` naming the key, when the app is built.
This page is generated from `thorn_core.Settings`, and a test keeps it in step.

| setting | default | meaning |
| --- | --- | --- |
"""


def _default(attribute: attrs.Attribute[object]) -> str:
    default = attribute.default
    if isinstance(default, attrs.Factory):
        default = default.factory()
    return repr(default).replace("'", '"')


def render() -> str:
    """The page's Markdown."""
    rows = []
    for attribute in attrs.fields(Settings):
        doc = attribute.metadata.get("doc")
        if not doc:
            raise ValueError(f"Settings.{attribute.name} has no metadata['doc']")
        name = PREFIX + attribute.name.upper()
        rows.append(f"| `{name}` | `{_default(attribute)}` | {doc} |")
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write or check the page; the exit status says whether it was up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite docs/settings.md")
    action.add_argument("--check", action="store_true", help="fail if it is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        PAGE.write_text(text, encoding="utf-8")
        return 0
    if PAGE.read_text(encoding="utf-8") != text:
        print(f"{PAGE} is out of date: run python tools/settings_reference.py --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
