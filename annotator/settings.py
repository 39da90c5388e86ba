"""Settings, read from the environment.

Unset DATABASE_URL -> SQLite in ./var (WAL, immediate transactions, busy timeout);
unset CELERY_BROKER_URL -> kombu's filesystem transport in ./var/broker, so the
worker is still a separate process and no server is needed.
"""

import math
import os
import re
import string
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()


def _owner_only(path: Path, mode: int) -> None:
    """chmod a file or folder of this user that others may read (made by an older version)."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return
    if status.st_uid == os.getuid() and status.st_mode & 0o077:
        path.chmod(mode)


# The database (password hashes, token digests), uploads, models and the broker's messages
# live in VAR_DIR: every file and folder these processes make is their user's alone.
os.umask(0o077)
VAR_DIR = Path(env("ANNOTATOR_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
_owner_only(VAR_DIR, 0o700)

DEBUG = env.bool("DEBUG", default=False)
# bin/up writes a random key here: manage.py from any shell signs as the running site.
SECRET_KEY_FILE = VAR_DIR / "secret_key"
_env_key = env("SECRET_KEY", default="")
_file_key = SECRET_KEY_FILE.read_text().strip() if SECRET_KEY_FILE.is_file() else ""
SECRET_KEY = _env_key or _file_key or ("dev-only-insecure-key" if DEBUG else "")


SECRET_KEY_MIN_LENGTH = 50  # as Django's deploy check (security.W009) asks
SECRET_KEY_MIN_BITS = 128


def secret_key_bits(key: str) -> float:
    """A cautious estimate of a key's randomness in bits. A character that continues a
    sequence (aaa, abc, 2468, aAbBcC) or ends a three-character run seen before (k3yk3y) adds
    nothing; every other adds log2 of its alphabet (the character classes used, at most the
    distinct characters). Random keys score far above the bar (token_urlsafe(50): 300+)."""
    classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
    alphabet = sum(len(chars) for chars in classes if any(c in chars for c in key))
    alphabet += 33 * any(c not in "".join(classes) for c in key)  # punctuation, the rest
    seen, surprising = set(), 0
    for i, char in enumerate(key):
        run = key[i - 2:i + 1] if i >= 2 else ""
        predictable = run in seen or any(
            ord(char) - ord(key[i - lag]) == ord(key[i - lag]) - ord(key[i - 2 * lag])
            for lag in (1, 2) if i >= 2 * lag)
        if run:
            seen.add(run)
        surprising += not predictable
    return surprising * math.log2(max(1, min(alphabet, len(set(key)))))


def _secret_key_problem(key: str) -> str:
    """Why a key is refused outside development ("" if it is fine): it must look random."""
    letters = re.sub("[^a-z]", "", key.lower())
    if not key:
        return "SECRET_KEY is required when DEBUG is off"
    if any(word in letters for word in ("changeme", "insecure", "placeholder")):
        return "SECRET_KEY is a placeholder (change me, ...insecure...)"
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return (f"SECRET_KEY is too short: {len(key)} characters, it needs "
                f"{SECRET_KEY_MIN_LENGTH} or more")
    if (bits := secret_key_bits(key)) < SECRET_KEY_MIN_BITS:
        return (f"SECRET_KEY is too predictable (repeats or sequences: about {bits:.0f} bits "
                f"of randomness, it needs {SECRET_KEY_MIN_BITS})")
    return ""


if not DEBUG and (_problem := _secret_key_problem(SECRET_KEY)):
    if _env_key:
        _where = "from the SECRET_KEY environment variable"
    elif _file_key:
        _where = f"read from {SECRET_KEY_FILE}"
    else:
        _where = f"set the SECRET_KEY environment variable, or write one to {SECRET_KEY_FILE}"
    raise ImproperlyConfigured(
        f"{_problem} ({_where}); make one with: "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))' "
        "(bin/up writes such a key to var/secret_key when none is set)"
    )

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
    "rest_framework",  # tokens: annotator.models.ApiToken (hashed), not DRF's authtoken
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here instead of a CDN
    "annotator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "annotator.views.headers.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "annotator.views.limits.BodySizeLimitMiddleware",
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
                "annotator.views.context_processors.background_failures",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "annotator.sqlite3"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    for _suffix in ("", "-wal", "-shm"):  # SQLite makes the last two as the first is
        _owner_only(Path(f"{DATABASES['default']['NAME']}{_suffix}"), 0o600)
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
    # an unreachable server fails in seconds (manage.py check_services), not minutes
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 10)
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

# Failed logins per username (as authentication reads it) and client address (the shared cache
# counts them): after this many within LOGIN_LOCKOUT_SECONDS of the first, that pair is refused
# until the window ends.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)

# One cache that every process of the site sees (gunicorn workers, Celery workers, beat): the
# sessions, the login lockout, the API throttle and the "once per window" marks only hold across
# processes there. CACHE_URL where set; else the broker's Redis when the broker is Redis (keys
# under "annotator:"; clearing it never empties Celery's queues); else files in VAR_DIR/cache,
# which every process of bin/up on this machine shares, and which write nothing to SQLite, whose
# one writer is busy with the labels (docs/deployment.md#sessions-and-cache).
_redis_broker = env("CELERY_BROKER_URL", default="").startswith(("redis://", "rediss://"))
CACHE_URL = env("CACHE_URL", default="") or (env("CELERY_BROKER_URL") if _redis_broker else "")


def _shared_cache(name: str, max_entries: int) -> dict:
    if not CACHE_URL:
        return {"BACKEND": "annotator.lib.cache_backends.SharedFileCache",
                "LOCATION": str(VAR_DIR / "cache" / name),
                "OPTIONS": {"MAX_ENTRIES": max_entries}}
    config = env.cache_url_config(CACHE_URL)
    if config["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
        config["BACKEND"] = "annotator.lib.cache_backends.SharedRedisCache"
    config.setdefault("KEY_PREFIX", "annotator" if name == "default" else f"annotator-{name}")
    return config


CACHES = {
    "default": _shared_cache("default", max_entries=10_000),
    # the insight pages' snapshots: written by a worker, read by every web process
    "insight": _shared_cache("insight", max_entries=2_000),
}
# sessions read from the shared cache first (two fewer queries per labeling request) and are
# kept in the database, so a logout in one process ends the session in all of them
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Scripts, connections, fonts and forms of this site only (no inline script: the page scripts
# are static files); style attributes are allowed (label colours, Swagger UI's own styles),
# images may be data: URLs (the charts are SVG data URLs). Empty: no header.
CONTENT_SECURITY_POLICY = env("ANNOTATOR_CSP", default="; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:", "font-src 'self'", "connect-src 'self'", "object-src 'none'",
    "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
]))

# --- HTTPS ------------------------------------------------------------------
# HTTPS=1: users reach the site over HTTPS only (TLS ends at a reverse proxy). Secure cookies,
# plain HTTP redirected to HTTPS (except /healthz, which container health checks call
# directly), HSTS. SECURE_COOKIES=1 is the older switch for the cookies alone.
HTTPS = env.bool("HTTPS", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS or env.bool("SECURE_COOKIES", default=False)
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz\Z"]
SECURE_HSTS_SECONDS = env.int("HSTS_SECONDS", default=365 * 24 * 3600) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("HSTS_PRELOAD", default=False)
# The header by which the proxy tells Django a request came over HTTPS, e.g. X-Forwarded-Proto
# (value "https"). Set it only when the proxy overwrites that header on every request.
_proxy_header = env("SECURE_PROXY_SSL_HEADER", default="")
if _proxy_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")
SILENCED_SYSTEM_CHECKS = [
    # HSTS preload is a promise to browser vendors that only the owner of the registrable
    # domain can make (hstspreload.org): HSTS_PRELOAD=1, not a default.
    "security.W021",
]

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
# files saved through a storage (artifacts, collectstatic): owner-only, as the umask above
# (Django's default would be 0o644 whatever the umask)
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
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
if STORAGES["artifacts"]["BACKEND"].endswith("S3Storage"):
    # a file read back (a kept upload, a model file) spools to disk past 64 MB, not all to memory
    STORAGES["artifacts"]["OPTIONS"].setdefault("max_memory_size", 64 * 1024 * 1024)

# --- celery -----------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"), "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    CELERY_BROKER_TRANSPORT = "annotator.lib.broker:Transport"  # whole messages only
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
    "annotator.tasks.score_chunk_task": {"queue": "scoring"},
    "annotator.tasks.rank_pool_task": {"queue": "scoring"},
    # bulk: work an import or a push brings, in chunks; a worker that takes "scoring" and
    # "bulk" alternates between them, so a big import delays a new version's scoring by one
    # chunk at most (docs/architecture.md, "Queues")
    "annotator.tasks.vocabulary_check_task": {"queue": "bulk"},
    "annotator.tasks.embed_pool_task": {"queue": "bulk"},
    "annotator.tasks.embed_chunk_task": {"queue": "bulk"},
    "annotator.tasks.near_duplicates_task": {"queue": "bulk"},
    "annotator.tasks.seed_pool_task": {"queue": "bulk"},
    # ranking: small work a person waits for (a re-ranked queue, a pushed item's prediction)
    "annotator.tasks.head_rerank_task": {"queue": "ranking"},
    "annotator.tasks.predict_items_task": {"queue": "ranking"},
    "annotator.tasks.find_label_issues_task": {"queue": "scoring"},
    "annotator.tasks.distill_version_task": {"queue": "training"},
    "annotator.tasks.deliver_webhook_task": {"queue": "default"},
    "annotator.tasks.refresh_insight_task": {"queue": "default"},
}
# --- live monitoring (docs/monitoring.md) -------------------------------------
# A failed webhook is tried again after 30 s, 60 s, 120 s ... up to this many attempts.
WEBHOOK_MAX_ATTEMPTS = env.int("ANNOTATOR_WEBHOOK_MAX_ATTEMPTS", default=5)
WEBHOOK_RETRY_SECONDS = env.int("ANNOTATOR_WEBHOOK_RETRY_SECONDS", default=30)
WEBHOOK_TIMEOUT_SECONDS = env.float("ANNOTATOR_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# Webhooks go to public addresses only (annotator/lib/webhook_targets.py); host names and networks
# listed here may be reached all the same, e.g. "hooks.internal,10.8.0.0/16" for an internal
# receiver. A CA file for receivers whose certificate a private CA signed.
WEBHOOK_ALLOWED_HOSTS = env.list("ANNOTATOR_WEBHOOK_ALLOWED_HOSTS", default=[])
WEBHOOK_CA_BUNDLE = env("ANNOTATOR_WEBHOOK_CA_BUNDLE", default="")
# Items the live counts on the dashboard and analytics pages cover (the newest predicted).
MONITORING_WINDOW = env.int("ANNOTATOR_MONITORING_WINDOW", default=200)
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
# Items per scoring chunk: one score_chunk_task each, so N scoring workers share a pool.
SCORING_CHUNK_SIZE = env.int("ANNOTATOR_SCORING_CHUNK_SIZE", default=2000)
# A scoring with no chunk done for this long is enqueued again (its worker was killed: the
# broker hands an unacknowledged task out again only after the visibility timeout, hours).
SCORING_STALE_SECONDS = env.int("ANNOTATOR_SCORING_STALE_SECONDS", default=900)
# The fast loop (annotator/services/fast_loop.py): pool embeddings once per encoder, in
# chunks; a head refit re-ranks this many items; a strategy sees at most this many unlabeled
# candidates (diversity strategies: fewer, k-means cost grows with them), subsampled
# "random" or "anchor" (AnchorAL); cold start ends when consecutive heads agree this much.
EMBED_CHUNK_SIZE = env.int("ANNOTATOR_EMBED_CHUNK_SIZE", default=2000)
# Cold-start seeding embeds this many candidates (k-means for 50 spread-out picks needs a
# sample, not the pool: 10,000 took 106-206 s on 2 cores and held the worker a retrain needs)
SEED_CANDIDATES = env.int("ANNOTATOR_SEED_CANDIDATES", default=2_000)
EMBED_PENDING_SECONDS = env.int("ANNOTATOR_EMBED_PENDING_SECONDS", default=3600)
FAST_LOOP_QUEUE_SIZE = env.int("ANNOTATOR_FAST_LOOP_QUEUE_SIZE", default=200)
FAST_LOOP_CANDIDATES = env.int("ANNOTATOR_FAST_LOOP_CANDIDATES", default=20_000)
FAST_LOOP_DIVERSITY_CANDIDATES = env.int("ANNOTATOR_FAST_LOOP_DIVERSITY_CANDIDATES",
                                         default=5_000)
FAST_LOOP_SUBSAMPLING = env("ANNOTATOR_FAST_LOOP_SUBSAMPLING", default="random")
FAST_LOOP_TRUST_KAPPA = env.float("ANNOTATOR_FAST_LOOP_TRUST_KAPPA", default=0.8)
FAST_LOOP_THROTTLE_SECONDS = env.int("ANNOTATOR_FAST_LOOP_THROTTLE_SECONDS", default=2)
# Suspicious labels (docs/label_review.md): after a fine-tune, at most this many of the labels
# the model disagrees with out of fold go to the adjudication queue; no check below MIN labels
LABEL_REVIEW_MAX_FLAGS = env.int("ANNOTATOR_LABEL_REVIEW_MAX_FLAGS", default=50)
LABEL_REVIEW_MIN_LABELS = env.int("ANNOTATOR_LABEL_REVIEW_MIN_LABELS", default=30)
# Distillation for serving (docs/distillation.md): a student keeps this many encoder blocks
# and learns the version's predictions over at most DISTILL_POOL_MAX pool items (a random
# draw beyond it); DISTILL_OVERRIDES: trainer.distill.DistillConfig fields (tests, tuning).
DISTILL_LAYERS = env.int("ANNOTATOR_DISTILL_LAYERS", default=4)
DISTILL_POOL_MAX = env.int("ANNOTATOR_DISTILL_POOL_MAX", default=20_000)
DISTILL_OVERRIDES = env.json("ANNOTATOR_DISTILL_OVERRIDES", default={})
# Prediction API (annotator/ml/serving.py). Inference runtime on CPU: "" = ANNOTATOR_INFERENCE
# (itself "onnx" by default: the version exported once, ONNX Runtime), or "onnx" / "torch"
# for the API only; SERVE_INT8: int8 (faster, but costs accuracy on e5); threads per serving
# process (0 = the runtime's default); texts per request.
SERVE_RUNTIME = env("ANNOTATOR_SERVE_RUNTIME", default="")
SERVE_INT8 = env.bool("ANNOTATOR_SERVE_INT8", default=False)
SERVE_THREADS = env.int("ANNOTATOR_SERVE_THREADS", default=0)
API_MAX_TEXTS = env.int("ANNOTATOR_API_MAX_TEXTS", default=64)
# explain=true costs a forward pass per word (up to EXPLAIN_MAX_WORDS words per text)
API_MAX_EXPLAIN_TEXTS = env.int("ANNOTATOR_API_MAX_EXPLAIN_TEXTS", default=8)
EXPLAIN_MAX_WORDS = env.int("ANNOTATOR_EXPLAIN_MAX_WORDS", default=64)
# ... and at most this many tokens read in all (trainer.explain: coarse to fine beyond it);
# 3072 keeps a 300-character review under 1.5 s p95 on 2 cores (docs/explanations.md)
EXPLAIN_MAX_TOKENS = env.int("ANNOTATOR_EXPLAIN_MAX_TOKENS", default=3072)
# Items per push (POST /api/projects/<id>/items/): one short write transaction each.
API_MAX_PUSH_ITEMS = env.int("ANNOTATOR_API_MAX_PUSH_ITEMS", default=5_000)
# Pushed items: a readability check per project at most this often; embeddings batched
PUSH_READABILITY_EVERY_SECONDS = env.int("ANNOTATOR_PUSH_READABILITY_EVERY_SECONDS", default=600)
PUSH_EMBED_EVERY_SECONDS = env.int("ANNOTATOR_PUSH_EMBED_EVERY_SECONDS", default=60)
# docs/search.md: items per bulk label; near-duplicates: the cosine, and the open items compared
BULK_LABEL_MAX_ITEMS = env.int("ANNOTATOR_BULK_LABEL_MAX_ITEMS", default=5000)
NEAR_DUPLICATE_SIMILARITY = env.float("ANNOTATOR_NEAR_DUPLICATE_SIMILARITY", default=0.97)
NEAR_DUPLICATE_MAX_ITEMS = env.int("ANNOTATOR_NEAR_DUPLICATE_MAX_ITEMS", default=50_000)
SEARCH_WARM_ENCODER = env.bool("ANNOTATOR_SEARCH_WARM_ENCODER", default=True)

# --- import / labeling ------------------------------------------------------
IMPORT_MAX_TEXT_CHARS = env.int("ANNOTATOR_MAX_TEXT_CHARS", default=20_000)
# Rows per write. SQLite has one writer: smaller batches hold its lock for less time
# (bench/import_while_labeling.py); PostgreSQL's COPY likes bigger ones.
IMPORT_BATCH_SIZE = env.int(
    "ANNOTATOR_IMPORT_BATCH_SIZE",
    default=500 if DATABASES["default"]["ENGINE"].endswith("sqlite3") else 2_000,
)
# A running import with no progress written for this long is marked failed (process killed).
IMPORT_STALE_SECONDS = env.int("ANNOTATOR_IMPORT_STALE_SECONDS", default=180)
# CPU priority of an import's process (os.nice increment): the web answers labelers first.
IMPORT_NICE = env.int("ANNOTATOR_IMPORT_NICE", default=10)
# Request bodies: file uploads on the import page, and everything else (API JSON, forms).
UPLOAD_MAX_BYTES = env.int("ANNOTATOR_UPLOAD_MAX_MB", default=512) * 1024 * 1024
REQUEST_MAX_BYTES = env.int("ANNOTATOR_REQUEST_MAX_MB", default=10) * 1024 * 1024
# A new project's Project.lease_seconds (each project may change its own afterwards).
DEFAULT_LEASE_SECONDS = env.int("ANNOTATOR_LEASE_SECONDS", default=600)
# Server-Timing header on the labeling endpoints (the load benchmark turns it on); off in
# production, which does not show its internal timings.
SERVER_TIMING = env.bool("ANNOTATOR_SERVER_TIMING", default=False)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotator.api.auth.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Prediction requests per user (annotator.api.predict.PredictThrottle), N/second|minute|hour|day;
    # empty = no limit.
    "DEFAULT_THROTTLE_RATES": {"predict": env("ANNOTATOR_API_RATE", default="120/minute") or None},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Sentiment annotator API",
    "VERSION": "1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # no "valid" badge fetched from swagger.io
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # the kind of text appears on projects (text_kind) and items (kind): one enum, one name
    "ENUM_NAME_OVERRIDES": {"TextKindEnum": "annotator.models.TextKind"},
}


def _one_line_below_500(record) -> bool:
    """django.request logs a 403 or 404 with its traceback: a client error, not ours, so one
    line ("Forbidden (Permission denied): /path") is enough; 5xx keep theirs."""
    if getattr(record, "status_code", 500) < 500:
        record.exc_info = record.exc_text = None
    return True


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"one_line_below_500": {"()": "django.utils.log.CallbackFilter",
                                       "callback": _one_line_below_500}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"filters": ["one_line_below_500"]},
    },
}
