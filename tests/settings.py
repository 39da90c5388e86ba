"""Test settings: the real settings with a throwaway var dir and a test secret."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "tests-only-secret")
os.environ.setdefault("ANNOTATOR_VAR_DIR", tempfile.mkdtemp(prefix="annotator-tests-"))

from annotator.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
