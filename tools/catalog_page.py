"""Generate docs/catalog.md, the event catalog of the Flask example app (examples/flask_app).

``python tools/catalog_page.py --write`` rewrites the page; ``--check`` exits 1 if it is out
of date (a test runs the check). The page is what ``thorn catalog --format markdown`` writes
for the example's app. Run it in a process of its own: Flask model events join the catalog
of every Flask app, so other models declaring the same event names would clash.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "catalog.md"
EXAMPLE = ROOT / "examples" / "flask_app" / "app.py"

HEADER = """\
<!-- Generated from examples/flask_app/app.py by tools/catalog_page.py; do not edit by hand:
run `python tools/catalog_page.py --write`. -->

"""

INTRO = """
This is the contract of the [Flask example](flask.md)'s webhooks, as
`thorn catalog --format markdown` writes it (see [Events](events.md#the-event-catalog)).
The example's app serves the same catalog at `/hooks/event-types/` and as an AsyncAPI 3.0
document at `/hooks/asyncapi.json`.
"""


def _example() -> object:
    """The example module, imported by path (it is not a package)."""
    if "thorn_flask_example" in sys.modules:  # once: its model events connect for good
        return sys.modules["thorn_flask_example"]
    spec = importlib.util.spec_from_file_location("thorn_flask_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def render() -> str:
    """The page: the example app's catalog as Markdown, under a note that it is generated."""
    from thorn_core.asyncapi import to_markdown
    from thorn_flask import get_state

    example = _example()
    app = example.create_app("sqlite://")  # type: ignore[attr-defined]
    with app.app_context():
        text = to_markdown(get_state(app).core.catalog, title="Event catalog of the example")
        get_state(app).core.close()
    title, _, rest = text.partition("\n")
    return HEADER + title + "\n" + INTRO + rest


def main(argv: list[str] | None = None) -> int:
    """Write or check the page; the exit status says whether it was up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite docs/catalog.md")
    action.add_argument("--check", action="store_true", help="fail if it is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        PAGE.write_text(text)
        return 0
    if not PAGE.exists() or PAGE.read_text() != text:
        print(f"{PAGE} is out of date: run python tools/catalog_page.py --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
