"""Settings, read from the environment (PROTOCOL.md §10).

With no configuration the server runs on a SQLite file and in-process layers and stores
(one process, zero setup). ``DATABASE_URL`` switches to PostgreSQL, ``REDIS_URL`` to Redis
for rooms, rate limits, presence and revocations, which lets many processes cooperate.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

DEV_SECRET_KEY = "aeturnis-dev-secret-key-do-not-use-in-production-0123456789"  # noqa: S105 (the refused development default)


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


def database_from_url(url: str) -> dict[str, Any]:
    """Translate ``postgres://user:pass@host:port/db?opt=v`` into a Django DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(f"DATABASE_URL scheme {parts.scheme!r} is not PostgreSQL")
    options: dict[str, Any] = dict(parse_qsl(parts.query))
    pool_max = int(options.pop("pool_max_size", "20"))
    options["pool"] = {"min_size": 1, "max_size": pool_max, "timeout": 10}
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
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured("DEBUG=0 requires SECRET_KEY to be set to a real secret")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"] if DEBUG else ["localhost", "127.0.0.1"])
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])

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
    "channels",
    "characters",
    "chat",
    "combat",
    "realtime",
    "play",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
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
        "DIRS": [],
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
STATIC_ROOT = BASE_DIR / "staticfiles"

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
}

# --- Realtime contract settings (PROTOCOL.md §10) -------------------------------------------

AETURNIS_VERSION = "1.0.0"
AETURNIS_AWAY_AFTER_S = env_float("AETURNIS_AWAY_AFTER_S", 300)
AETURNIS_PRESENCE_REFRESH_S = env_float("AETURNIS_PRESENCE_REFRESH_S", 30)
AETURNIS_PRESENCE_TTL_S = env_float("AETURNIS_PRESENCE_TTL_S", 90)
AETURNIS_TYPING_TIMEOUT_S = env_float("AETURNIS_TYPING_TIMEOUT_S", 6)
AETURNIS_TURN_SECONDS = env_float("AETURNIS_TURN_SECONDS", 30)
AETURNIS_MAX_SPEED = env_float("AETURNIS_MAX_SPEED", 10)
# Our own settings (not in the contract): how often live positions are written behind, and how
# many movement violations within a minute end a connection as suspicious.
AETURNIS_POSITION_FLUSH_S = env_float("AETURNIS_POSITION_FLUSH_S", 5)
AETURNIS_MOVE_VIOLATIONS = env_int("AETURNIS_MOVE_VIOLATIONS", 10)
AETURNIS_PROFANITY_MODE = env_str("AETURNIS_PROFANITY_MODE", "mask")
AETURNIS_ALLOWED_ORIGINS = env_list("AETURNIS_ALLOWED_ORIGINS", [])
AETURNIS_METRICS_TOKEN = env_str("AETURNIS_METRICS_TOKEN", "")
AETURNIS_COMBAT_SEED = os.environ.get("AETURNIS_COMBAT_SEED") or None
AETURNIS_HISTORY_SIZE = env_int("AETURNIS_HISTORY_SIZE", 200)
AETURNIS_HISTORY_TTL_S = env_float("AETURNIS_HISTORY_TTL_S", 600)
AETURNIS_AUTH_FRAME_TIMEOUT_S = env_float("AETURNIS_AUTH_FRAME_TIMEOUT_S", 5)
AETURNIS_SHUTDOWN_RECONNECT_AFTER_MS = env_int("AETURNIS_SHUTDOWN_RECONNECT_AFTER_MS", 2000)
AETURNIS_OUTBOUND_QUEUE_SIZE = env_int("AETURNIS_OUTBOUND_QUEUE_SIZE", 1000)
AETURNIS_MAX_FRAME_BYTES = 64 * 1024
# Engine.IO heartbeat of the Socket.IO endpoint (PROTOCOL.md §1.2); tests shorten them.
AETURNIS_SIO_PING_INTERVAL_MS = env_int("AETURNIS_SIO_PING_INTERVAL_MS", 25000)
AETURNIS_SIO_PING_TIMEOUT_MS = env_int("AETURNIS_SIO_PING_TIMEOUT_MS", 60000)

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
# One JSON object per line (realtime.logs.JsonFormatter) instead of human-readable lines. Both
# formatters redact tokens; uvicorn's loggers go through the same handler, because its
# WebSocket log lines include the query string (and so a ?token=).
AETURNIS_LOG_JSON = env_bool("AETURNIS_LOG_JSON", False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "realtime.logs.RedactingFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "realtime.logs.JsonFormatter"},
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
        # No level here: uvicorn's --log-level still decides.
        "uvicorn": {"handlers": ["console"], "propagate": False},
        "uvicorn.access": {"handlers": ["console"], "propagate": False},
    },
}
