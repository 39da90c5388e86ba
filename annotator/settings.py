"""Settings, read from the environment.

Unset DATABASE_URL -> SQLite in ./var (WAL, immediate transactions, busy timeout);
unset CELERY_BROKER_URL -> kombu's filesystem transport in ./var/broker, so the
worker is still a separate process and no server is needed.
"""

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

VAR_DIR = Path(env("ANNOTATOR_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)
if DEBUG:
    SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key")
else:
    SECRET_KEY = env("SECRET_KEY")  # required outside development

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "annotator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "annotator.urls"
WSGI_APPLICATION = "annotator.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "annotator.sqlite3"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Many labelers at once on SQLite: WAL lets readers run beside the writer,
    # IMMEDIATE takes the write lock at BEGIN (no deadlock-on-upgrade "database
    # is locked"), and the busy timeout makes writers queue instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": (
            "PRAGMA journal_mode=WAL;"
            "PRAGMA synchronous=NORMAL;"
            "PRAGMA busy_timeout=30000;"
            "PRAGMA foreign_keys=ON;"
        ),
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if env("TEST_DATABASE_NAME", default=""):
        DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "project_list"
LOGOUT_REDIRECT_URL = "login"

# sessions read from the process cache first: two fewer queries per labeling request
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Model artifacts go through Django's storage API ("artifacts" alias), so they
# can live on shared storage (S3, NFS) by changing only this setting.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "artifacts": {
        "BACKEND": env("ARTIFACT_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"),
        "OPTIONS": (
            {"location": env("ARTIFACT_ROOT", default=str(VAR_DIR / "artifacts"))}
            if env("ARTIFACT_STORAGE_BACKEND", default="").endswith("FileSystemStorage")
            or not env("ARTIFACT_STORAGE_BACKEND", default="")
            else {}
        ),
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedStaticFilesStorage",
    },
}
# Options for another artifacts backend, as JSON, e.g. {"bucket_name": "models"} for S3.
STORAGES["artifacts"]["OPTIONS"].update(env.json("ARTIFACT_STORAGE_OPTIONS", default={}))

# --- celery -----------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    _default_backend = f"db+sqlite:///{VAR_DIR / 'celery-results.sqlite3'}"
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
    _default_backend = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "rpc://"
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=_default_backend)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "annotator.tasks.train_project_task": {"queue": "training"},
    "annotator.tasks.score_pool_task": {"queue": "scoring"},
    "annotator.tasks.vocabulary_check_task": {"queue": "scoring"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_RESULT_EXPIRES = 24 * 3600

# --- ML ---------------------------------------------------------------------
# The encoder of projects that name none: a built-in name (multilingual-e5-small,
# all-MiniLM-L6-v2), a registered model, a Hugging Face id or a local path.
DEFAULT_MODEL_NAME = env("ANNOTATOR_MODEL", default="multilingual-e5-small")
# Converted built-in models and registered ones (register_model). trainer/ has no Django,
# so it reads the folder from the environment.
MODEL_DIR = Path(env("ANNOTATOR_MODEL_DIR", default=str(VAR_DIR / "models")))
os.environ["ANNOTATOR_MODEL_DIR"] = str(MODEL_DIR)
# A model that reads more than this share of a project's tokens as unknown cannot read the
# data: the import report and the registry warn, and scheduled retraining waits for an admin.
UNKNOWN_TOKEN_LIMIT = env.float("ANNOTATOR_UNKNOWN_TOKEN_LIMIT", default=0.05)
VOCABULARY_SAMPLE = env.int("ANNOTATOR_VOCABULARY_SAMPLE", default=500)
TRAINING_DEVICE = env("ANNOTATOR_DEVICE", default="")  # "", "cpu", "cuda"
# A run with no heartbeat for this long is considered dead (worker killed).
TRAINING_STALE_SECONDS = env.int("ANNOTATOR_TRAINING_STALE_SECONDS", default=300)
# Start each new version from the active one instead of the base model.
TRAINING_WARM_START = env.bool("ANNOTATOR_WARM_START", default=False)
# TrainConfig fields for every run, e.g. {"learning_rate": 1e-4, "epochs": 4}.
TRAINING_OVERRIDES = env.json("ANNOTATOR_TRAINING_OVERRIDES", default={})
# Score the pool with int8 dynamic quantization on CPU (about 2x less CPU).
SCORING_INT8 = env.bool("ANNOTATOR_SCORING_INT8", default=False)
# Prediction API (annotator/serving.py): int8 dynamic quantization on CPU, torch threads
# per serving process (0 = torch's default), texts per request.
SERVE_INT8 = env.bool("ANNOTATOR_SERVE_INT8", default=False)
SERVE_RUNTIME = env("ANNOTATOR_SERVE_RUNTIME", default="torch")  # or "onnx" (the onnx extra)
SERVE_THREADS = env.int("ANNOTATOR_SERVE_THREADS", default=0)
API_MAX_TEXTS = env.int("ANNOTATOR_API_MAX_TEXTS", default=64)

# --- import / labeling ------------------------------------------------------
IMPORT_MAX_TEXT_CHARS = env.int("ANNOTATOR_MAX_TEXT_CHARS", default=20_000)
IMPORT_BATCH_SIZE = env.int("ANNOTATOR_IMPORT_BATCH_SIZE", default=2_000)
DEFAULT_LEASE_SECONDS = env.int("ANNOTATOR_LEASE_SECONDS", default=600)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {"TITLE": "Sentiment annotator API", "VERSION": "1"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
