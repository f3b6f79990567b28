#!/usr/bin/env python
"""``manage.py`` of the example project."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run a management command with the example's settings."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
