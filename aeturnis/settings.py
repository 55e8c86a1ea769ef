"""Settings, read from the environment (PROTOCOL.md §10).

With no configuration the server runs on a SQLite file and in-process layers and stores
(one process, zero setup). ``DATABASE_URL`` switches to PostgreSQL, ``REDIS_URL`` to Redis
for rooms, rate limits, presence and revocations, which lets many processes cooperate.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

DEV_SECRET_KEY = "aeturnis-dev-secret-key-do-not-use-in-production-0123456789"  # noqa: S105 (the refused development default)
# deploy/production.env.example's placeholder starts with this; it is refused like the dev key.
EXAMPLE_SECRET_PREFIX = "CHANGE-ME"  # noqa: S105 (a placeholder that is refused)


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# Seconds a database call may take before the request is answered SERVICE_UNAVAILABLE
# (PROTOCOL.md §8a: within 2 s) and the database counts as down.
DB_TIMEOUT_S = env_float("AETURNIS_DB_TIMEOUT_S", 1.5)
AETURNIS_DB_TIMEOUT_S = DB_TIMEOUT_S
# Connections of a process's event loop for the hot path's reads (realtime.core.reads), on top
# of the pool's: a connect storm's reads overlap instead of queueing behind one connection.
AETURNIS_DB_READ_CONNECTIONS = env_int("AETURNIS_DB_READ_CONNECTIONS", 2)
# Whether those reads are prepared statements (PostgreSQL parses and plans each once per
# connection). Off behind a transaction-mode pooler that does not track them (PgBouncer before
# 1.21, or max_prepared_statements = 0); a process that meets one turns them off by itself.
AETURNIS_DB_PREPARE_READS = env_bool("AETURNIS_DB_PREPARE_READS", True)


def database_from_url(url: str) -> dict[str, Any]:
    """Translate ``postgres://user:pass@host:port/db?opt=v`` into a Django DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(f"DATABASE_URL scheme {parts.scheme!r} is not PostgreSQL")
    options: dict[str, Any] = dict(parse_qsl(parts.query))
    pool_max = int(options.pop("pool_max_size", "20"))
    # Fail fast when PostgreSQL is unreachable (PROTOCOL.md §8a): a connection is given this
    # long to open, a request this long to get one from the pool.
    options.setdefault("connect_timeout", "2")
    options["pool"] = {"min_size": 1, "max_size": pool_max, "timeout": DB_TIMEOUT_S}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        # Under ASGI connections must not outlive a request/hop; the pool reuses them.
        "CONN_MAX_AGE": 0,
        "OPTIONS": options,
        "TEST": {"NAME": options.pop("test_name", None)},
    }


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)
if not DEBUG and (SECRET_KEY == DEV_SECRET_KEY or SECRET_KEY.startswith(EXAMPLE_SECRET_PREFIX)):
    raise ImproperlyConfigured("DEBUG=0 requires SECRET_KEY to be set to a real secret")

# With DEBUG=0 there is no safe guess: behind a proxy a localhost-only default answers every
# request 400, so a production server without ALLOWED_HOSTS refuses to start instead.
if not DEBUG and not os.environ.get("ALLOWED_HOSTS", "").strip():
    raise ImproperlyConfigured(
        "DEBUG=0 requires ALLOWED_HOSTS: the host names clients use, e.g. game.example.com"
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"])
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])

# Browser origins allowed to open WebSockets (realtime.auth.sources.origin_allowed) and to call
# the HTTP API under /api/ (django-cors-headers).
AETURNIS_ALLOWED_ORIGINS = env_list("AETURNIS_ALLOWED_ORIGINS", [])


def cors_settings(origins: list[str], *, debug: bool) -> dict[str, Any]:
    """django-cors-headers settings for ``AETURNIS_ALLOWED_ORIGINS``.

    Listed origins may send credentials (cookies, Authorization). ``*`` (or DEBUG with no list,
    as for WebSockets) allows any origin, but then never with credentials.
    """
    any_origin = "*" in origins or (debug and not origins)
    return {
        "CORS_ALLOW_ALL_ORIGINS": any_origin,
        "CORS_ALLOWED_ORIGINS": [] if any_origin else [o.rstrip("/") for o in origins],
        "CORS_ALLOW_CREDENTIALS": not any_origin,
    }


_cors = cors_settings(AETURNIS_ALLOWED_ORIGINS, debug=DEBUG)
CORS_ALLOW_ALL_ORIGINS: bool = _cors["CORS_ALLOW_ALL_ORIGINS"]
CORS_ALLOWED_ORIGINS: list[str] = _cors["CORS_ALLOWED_ORIGINS"]
CORS_ALLOW_CREDENTIALS: bool = _cors["CORS_ALLOW_CREDENTIALS"]
# The HTTP API only: /socket.io/ answers CORS itself (the Socket.IO transport).
CORS_URLS_REGEX = r"^/api/.*$"
# A refused login (429) says when to try again; scripts of allowed origins may read it.
CORS_EXPOSE_HEADERS = ["Retry-After"]
# Unsafe requests from these origins pass Django's CSRF check (e.g. the admin or a web client
# on another host using the session). By default the browser origins allowed above.
CSRF_TRUSTED_ORIGINS = env_list(
    "CSRF_TRUSTED_ORIGINS", [o.rstrip("/") for o in AETURNIS_ALLOWED_ORIGINS if o != "*"]
)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "channels",
    "characters",
    "chat",
    "combat",
    "realtime",
    "play",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, Swagger UI) in every mode, without a separate web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Inside CommonMiddleware, so that APPEND_SLASH still redirects a 404 it replaced.
    "aeturnis.site.PlainNotFoundMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "aeturnis.urls"
ASGI_APPLICATION = "aeturnis.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "aeturnis" / "templates"],
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

DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("AETURNIS_SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            "OPTIONS": {"timeout": 20},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# `manage.py collectstatic` writes here; WhiteNoise serves it from here when DEBUG is off.
STATIC_ROOT = env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # In production: content-hashed names (cached forever by browsers) and pre-compressed
    # copies, which need `collectstatic`; with DEBUG the files come straight from the apps.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Decided here rather than from DEBUG at request time (test runners switch DEBUG off): with
# DEBUG, WhiteNoise finds files in the apps on every request; without, it indexes STATIC_ROOT
# once at start.
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_USE_FINDERS = DEBUG

# --- HTTPS behind a TLS-terminating proxy ----------------------------------------------------
#
# Django's SECURE_PROXY_SSL_HEADER would believe X-Forwarded-Proto from any client. It stays
# unset: aeturnis.proxy.forwarded_scope sets the request's scheme from that header only when
# the peer is in TRUSTED_PROXIES (applied by aeturnis.asgi.Application), so
# request.is_secure() and the CSRF origin check are right.

# Clients reach the server over https/wss (directly or through the proxy): secure cookies,
# HSTS, and plain-http requests redirected (the probes and /metrics excepted).
AETURNIS_HTTPS = env_bool("AETURNIS_HTTPS", False)
SECURE_SSL_REDIRECT = AETURNIS_HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = AETURNIS_HTTPS
CSRF_COOKIE_SECURE = AETURNIS_HTTPS
# An hour by default: raise it (a year, 31536000) once HTTPS is known to work everywhere.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 3600 if AETURNIS_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)

# --- Redis and the channel layer -----------------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "")
# Key prefix for everything this app stores in Redis; tests give each run its own.
AETURNIS_REDIS_PREFIX = env_str("AETURNIS_REDIS_PREFIX", "aeturnis")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{AETURNIS_REDIS_PREFIX}:layer:"},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 10_000},
        }
    }

# --- REST framework and tokens --------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "realtime.auth.drf.RevocationAwareJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

AETURNIS_ACCESS_TOKEN_LIFETIME_S = env_int("AETURNIS_ACCESS_TOKEN_LIFETIME_S", 900)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=AETURNIS_ACCESS_TOKEN_LIFETIME_S),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=7),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": SECRET_KEY,
    "USER_ID_CLAIM": "user_id",
    "UPDATE_LAST_LOGIN": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Aeturnis Realtime API",
    "DESCRIPTION": "Authentication and operator API of the Aeturnis real-time layer.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # /api/realtime/<x>/ also answers (aeturnis.urls); the schema lists only the contract's paths.
    "PREPROCESSING_HOOKS": ["aeturnis.urls.without_slash_aliases"],
}

# --- Realtime contract settings (PROTOCOL.md §10) -------------------------------------------

AETURNIS_VERSION = "1.0.0"
AETURNIS_AWAY_AFTER_S = env_float("AETURNIS_AWAY_AFTER_S", 300)
AETURNIS_PRESENCE_REFRESH_S = env_float("AETURNIS_PRESENCE_REFRESH_S", 30)
AETURNIS_PRESENCE_TTL_S = env_float("AETURNIS_PRESENCE_TTL_S", 90)
AETURNIS_TYPING_TIMEOUT_S = env_float("AETURNIS_TYPING_TIMEOUT_S", 6)
AETURNIS_TURN_SECONDS = env_float("AETURNIS_TURN_SECONDS", 30)
AETURNIS_MAX_SPEED = env_float("AETURNIS_MAX_SPEED", 10)
# Our own settings (not in the contract): how often live positions are written behind, how
# many movement violations within a minute end a connection as suspicious, and how many seconds
# of movement the speed budget holds as a burst (characters.rules.SpeedLimit, issue #16).
AETURNIS_POSITION_FLUSH_S = env_float("AETURNIS_POSITION_FLUSH_S", 5)
AETURNIS_MOVE_VIOLATIONS = env_int("AETURNIS_MOVE_VIOLATIONS", 10)
AETURNIS_MOVE_BURST_S = env_float("AETURNIS_MOVE_BURST_S", 0.5)
if not 0 <= AETURNIS_MOVE_BURST_S <= 60:  # also refuses NaN
    raise ImproperlyConfigured("AETURNIS_MOVE_BURST_S must be between 0 and 60 seconds")
AETURNIS_PROFANITY_MODE = env_str("AETURNIS_PROFANITY_MODE", "mask")
AETURNIS_METRICS_TOKEN = env_str("AETURNIS_METRICS_TOKEN", "")
AETURNIS_COMBAT_SEED = os.environ.get("AETURNIS_COMBAT_SEED") or None
AETURNIS_HISTORY_SIZE = env_int("AETURNIS_HISTORY_SIZE", 200)
AETURNIS_HISTORY_TTL_S = env_float("AETURNIS_HISTORY_TTL_S", 600)
AETURNIS_AUTH_FRAME_TIMEOUT_S = env_float("AETURNIS_AUTH_FRAME_TIMEOUT_S", 5)
AETURNIS_SHUTDOWN_RECONNECT_AFTER_MS = env_int("AETURNIS_SHUTDOWN_RECONNECT_AFTER_MS", 2000)
AETURNIS_OUTBOUND_QUEUE_SIZE = env_int("AETURNIS_OUTBOUND_QUEUE_SIZE", 1000)
# Bytes a connection may fall behind (queued by us plus buffered by the server) before it is
# closed 4008 SLOW_CONSUMER; what one slow client can cost in memory.
AETURNIS_OUTBOUND_BUFFER_BYTES = env_int("AETURNIS_OUTBOUND_BUFFER_BYTES", 1024 * 1024)
# After a close frame the server waits this long for the client to close before dropping the
# socket (a client that stopped reading still gets its 4008 when it reads again).
AETURNIS_CLOSE_GRACE_S = env_float("AETURNIS_CLOSE_GRACE_S", 10)
AETURNIS_MAX_FRAME_BYTES = 64 * 1024
# The largest frame an operator may have sent to clients (notify's data, encoded as the
# transports frame it): what the admin API and commands refuse above (issue #19).
AETURNIS_MAX_OUTBOUND_FRAME_BYTES = env_int("AETURNIS_MAX_OUTBOUND_FRAME_BYTES", 64 * 1024)
if not 1024 <= AETURNIS_MAX_OUTBOUND_FRAME_BYTES <= AETURNIS_OUTBOUND_BUFFER_BYTES:
    # Above the buffer bound a single frame to a client that is a little behind closes it 4008.
    raise ImproperlyConfigured(
        "AETURNIS_MAX_OUTBOUND_FRAME_BYTES must be between 1024 and AETURNIS_OUTBOUND_BUFFER_BYTES"
    )
# HTTP request bodies over this are refused with 413 before they are read.
AETURNIS_MAX_REQUEST_BYTES = env_int("AETURNIS_MAX_REQUEST_BYTES", 1024 * 1024)
# Password checks (PBKDF2, ~270 ms of CPU each) that may run at once in one process, and how
# long a login waits for a free one before it is refused 429 (realtime.auth.login, issue #19):
# a login flood costs each process at most that many cores and the game keeps the rest.
AETURNIS_PASSWORD_HASH_CONCURRENCY = env_int("AETURNIS_PASSWORD_HASH_CONCURRENCY", 1)
if not 1 <= AETURNIS_PASSWORD_HASH_CONCURRENCY <= 64:
    raise ImproperlyConfigured("AETURNIS_PASSWORD_HASH_CONCURRENCY must be between 1 and 64")
AETURNIS_PASSWORD_HASH_WAIT_S = env_float("AETURNIS_PASSWORD_HASH_WAIT_S", 2)
if not 0 <= AETURNIS_PASSWORD_HASH_WAIT_S <= 60:  # also refuses NaN
    raise ImproperlyConfigured("AETURNIS_PASSWORD_HASH_WAIT_S must be between 0 and 60 seconds")
# Engine.IO heartbeat of the Socket.IO endpoint (PROTOCOL.md §1.2); tests shorten them.
AETURNIS_SIO_PING_INTERVAL_MS = env_int("AETURNIS_SIO_PING_INTERVAL_MS", 25000)
AETURNIS_SIO_PING_TIMEOUT_MS = env_int("AETURNIS_SIO_PING_TIMEOUT_MS", 60000)
# Engine.IO's maxPayload: the largest Socket.IO WebSocket message (larger: close 1009) and the
# largest long-polling POST body; advertised in the open packet.
AETURNIS_SIO_MAX_PAYLOAD_BYTES = env_int("AETURNIS_SIO_MAX_PAYLOAD_BYTES", AETURNIS_MAX_FRAME_BYTES)
# Socket.IO connection state recovery (PROTOCOL.md §1.2): how long after a connection ended a
# client may reconnect with its pid and get its rooms and missed events back; 0 turns recovery
# (and the pid of the CONNECT answer) off.
AETURNIS_SIO_RECOVERY_S = env_float("AETURNIS_SIO_RECOVERY_S", 120)
if not 0 <= AETURNIS_SIO_RECOVERY_S <= 3600:  # also refuses NaN
    raise ImproperlyConfigured("AETURNIS_SIO_RECOVERY_S must be between 0 and 3600 seconds")
# This process's id, the prefix of the Engine.IO sids it issues (`<node id>.<secret>`): nginx
# routes Socket.IO long-polling to the process that holds the session by it. Unset: a random
# id per process (fine for one process, or behind a balancer sticky by other means).
AETURNIS_NODE_ID = env_str("AETURNIS_NODE_ID", "") or f"p{secrets.token_hex(4)}"
if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", AETURNIS_NODE_ID):
    raise ImproperlyConfigured(
        "AETURNIS_NODE_ID must be 1-32 letters, digits, '-' or '_' (it prefixes Engine.IO sids)"
    )

try:
    AETURNIS_RATE_LIMITS: dict[str, str] = json.loads(
        os.environ.get("AETURNIS_RATE_LIMITS") or "{}"
    )
except json.JSONDecodeError as exc:
    raise ImproperlyConfigured(f"AETURNIS_RATE_LIMITS is not valid JSON: {exc}") from exc
if not isinstance(AETURNIS_RATE_LIMITS, dict):
    raise ImproperlyConfigured("AETURNIS_RATE_LIMITS must be a JSON object")

# --- Logging ----------------------------------------------------------------------------------

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# One JSON object per line (realtime.core.logs.JsonFormatter) instead of human-readable lines. Both
# formatters redact tokens; uvicorn's loggers go through the same handler, because its
# WebSocket log lines include the query string (and so a ?token=).
AETURNIS_LOG_JSON = env_bool("AETURNIS_LOG_JSON", False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "realtime.core.logs.RedactingFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "realtime.core.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if AETURNIS_LOG_JSON else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # The pool warns at every reconnection attempt while PostgreSQL is down; the outage
        # is reported once by realtime.core.health instead.
        "psycopg.pool": {"level": "ERROR"},
        # No level here: uvicorn's --log-level still decides.
        "uvicorn": {"handlers": ["console"], "propagate": False},
        "uvicorn.access": {"handlers": ["console"], "propagate": False},
        # websockets' own lines under uvicorn (realtime.transport.uvicorn): its INFO ones,
        # "connection open" and "connection rejected", repeat the line uvicorn writes for every
        # WebSocket ("[accepted]", "403") without the address, at ~10 µs of CPU each.
        "uvicorn.error.websockets": {"level": "WARNING"},
    },
}
