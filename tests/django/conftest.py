"""Django test project set-up: settings, ``django.setup()``, and the fixtures of the suite.

This conftest configures Django itself (pytest-django reads no ``--ds`` option or ini key),
so ``pytest`` from the repository root and ``pytest tests/django`` both work, and runs of
``tests/core`` never import Django. Without Django or DRF installed the folder is ignored.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("django") is None or importlib.util.find_spec("rest_framework") is None:
    collect_ignore_glob = ["*"]
else:
    import django
    from django.conf import settings

    if not settings.configured:
        # settings.configure() rather than DJANGO_SETTINGS_MODULE, so that subprocesses of
        # other suites (Celery workers, Flask CLIs) do not inherit a Django configuration.
        from . import settings as test_settings

        settings.configure(
            **{name: getattr(test_settings, name) for name in dir(test_settings) if name.isupper()}
        )
    django.setup()

    from ._support import *  # noqa: F403 -- the fixtures and hooks of the suite
