"""Settings of the Django test project (SQLite; PostgreSQL with THORN_TEST_DATABASE=postgresql)."""

from __future__ import annotations

import os

#: The database the suite runs on: ``sqlite`` (default) or ``postgresql``.
TEST_DATABASE = os.environ.get("THORN_TEST_DATABASE", "sqlite")
POSTGRESQL_URL = os.environ.get(
    "THORN_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

SECRET_KEY = "thorn-tests-only"
DEBUG = False
USE_TZ = True
ROOT_URLCONF = "tests.django.urls"
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
SITE_ID = 1
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.sites",
    "rest_framework",
    "thorn_django",
    "tests.django.testapp",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

if TEST_DATABASE == "postgresql":
    from urllib.parse import urlsplit

    _url = urlsplit(POSTGRESQL_URL)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _url.path.lstrip("/") or "test",
            "USER": _url.username or "postgres",
            "PASSWORD": _url.password or "",
            "HOST": _url.hostname or "127.0.0.1",
            "PORT": str(_url.port or 5432),
            "TEST": {"NAME": "test_thorn_django"},
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
}

# Model events wait for the transaction to commit, as a Django project should.
THORN_SIGNAL_HONORS_TRANSACTION = True

# Fast password hashing: the suite creates many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
