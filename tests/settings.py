"""Test settings: the real settings with a throwaway var dir and a test secret."""

import atexit
import os
import shutil
import tempfile

# long and random enough for the start-up check (annotator.settings.secret_key_bits)
os.environ.setdefault("SECRET_KEY", "tests-only-Qm7vX2pL9tRw4eKz8yNb3hJc6fGd1sAu5oVi0nTq")
if "ANNOTATOR_VAR_DIR" not in os.environ:
    # a run leaves GBs here (model versions, caches): removed when the process that made it
    # ends (worker subprocesses inherit the variable and leave it alone)
    os.environ["ANNOTATOR_VAR_DIR"] = tempfile.mkdtemp(prefix="annotator-tests-")
    atexit.register(shutil.rmtree, os.environ["ANNOTATOR_VAR_DIR"], ignore_errors=True)
# the converted multilingual default (470 MB) is made once per machine, not once per run
os.environ.setdefault("ANNOTATOR_MODEL_DIR",
                      os.path.expanduser("~/.cache/sentiment-annotator/models"))

from annotator.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # a real file (not :memory:) so concurrency tests see WAL and busy timeouts as in production
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
IMPORT_NICE = 0  # tests stay at normal priority (the importer would renice pytest itself)
SEARCH_WARM_ENCODER = False  # no background model load on the Find page (tests that search
# by meaning load the encoder where they ask for it)
