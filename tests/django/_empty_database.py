"""``manage.py`` on an SQLite file of a test's own, for the commands' database-error tests.

``python -m tests.django._empty_database PATH COMMAND ARGS...`` runs a management command with
the test project's settings, ``PATH`` as the database (a new file has no tables) and
loopback receivers allowed.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Configure the settings for the database at ``argv[1]``, then run the command."""
    from django.conf import settings

    from thorn_core.testing import loopback_validators

    from . import settings as test_settings

    path, *argv = sys.argv[1:]
    values = {name: getattr(test_settings, name) for name in dir(test_settings) if name.isupper()}
    values["DATABASES"] = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": path}}
    values["THORN_RECIPIENT_VALIDATORS"] = list(loopback_validators())
    settings.configure(**values)

    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *argv])


if __name__ == "__main__":
    main()
