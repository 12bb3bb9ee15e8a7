"""Settings for Interconnect Hub, read from the environment (django-environ).

With no environment at all the hub runs on embedded defaults: a SQLite file, a filesystem
Celery broker that a separate worker process can consume, and a local-memory cache. Setting
``HUB_MODE=production`` turns on every deployment safeguard and refuses a default secret.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
import plotly
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

HUB_MODE = env.str("HUB_MODE", default="development")
if HUB_MODE not in {"development", "production"}:
    raise ImproperlyConfigured("HUB_MODE must be 'development' or 'production'.")
PRODUCTION = HUB_MODE == "production"

DEVELOPMENT_SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105 - refused in production
SECRET_KEY = env.str("SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
if PRODUCTION and (SECRET_KEY == DEVELOPMENT_SECRET_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "HUB_MODE=production needs SECRET_KEY set to a random value of at least 50 characters "
        "(for example: python -c 'import secrets; print(secrets.token_urlsafe(64))')."
    )

DEBUG = env.bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "hub",
    "fabric",
    "marketplace",
    "security",
]

MIDDLEWARE = [
    "hub.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "hub.middleware.ActiveOrganizationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Axes last: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "hub.urls"
WSGI_APPLICATION = "hub.wsgi.application"

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
                "django.template.context_processors.csp",
                "hub.context_processors.organization",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A worker thread or process shares the file: take the write lock up front and wait for it.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
    # A file, not memory, so a worker thread sees the test data; per process so parallel runs never collide.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_db_{os.getpid()}.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits, idempotency locks) --------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "hub"}}

# --- Identity ---------------------------------------------------------------------------------
AUTH_USER_MODEL = "hub.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
INVITATION_TTL = timedelta(days=env.int("INVITATION_TTL_DAYS", default=7))

# django-axes: lock a username from one address after repeated failures.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "username"  # the login form field, although users log in with their e-mail
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_PROXY_COUNT = env.int("PROXY_COUNT", default=0)
AXES_VERBOSE = False

# One mailer, "default" (Django 6.1's MAILERS; the EMAIL_* settings are deprecated). EMAIL_URL
# (e.g. smtp+tls://user:password@mail.example.com:587) configures it; EMAIL_BACKEND alone picks a
# backend class. Without either: SMTP on localhost in production, the console elsewhere.
_MAIL_OPTIONS = {  # EMAIL_URL's parsed keys -> the backend's keyword arguments
    "EMAIL_HOST": "host",
    "EMAIL_PORT": "port",
    "EMAIL_HOST_USER": "username",
    "EMAIL_HOST_PASSWORD": "password",
    "EMAIL_USE_TLS": "use_tls",
    "EMAIL_USE_SSL": "use_ssl",
    "EMAIL_TIMEOUT": "timeout",
    "EMAIL_FILE_PATH": "file_path",
}
_email_url = env.email_url("EMAIL_URL") if env.str("EMAIL_URL", default="") else {}
MAILERS = {
    "default": {
        "BACKEND": _email_url.get("EMAIL_BACKEND")
        or env.str(
            "EMAIL_BACKEND",
            default="django.core.mail.backends.smtp.EmailBackend"
            if PRODUCTION
            else "django.core.mail.backends.console.EmailBackend",
        ),
        "OPTIONS": {option: _email_url[key] for key, option in _MAIL_OPTIONS.items() if _email_url.get(key)},
    }
}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Interconnect Hub <noreply@hub.example>")
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# --- Internationalisation ---------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("plotly", Path(plotly.__file__).parent / "package_data"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security headers -------------------------------------------------------------------------
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    # plotly.js and Swagger UI set inline styles on the elements they draw.
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[])

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "hub.api.authentication.BearerTokenAuthentication",
        "hub.api.authentication.OrgSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["hub.api.permissions.HasOrgAction"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "hub.api.pagination.HubPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "hub.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["hub.api.throttling.PrincipalRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "principal": env.str("API_THROTTLE_RATE", default="1200/min"),
        "anon": env.str("API_ANON_THROTTLE_RATE", default="120/min"),
    },
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["hub.api.parsers.StrictJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "Interconnect Hub API",
    "DESCRIPTION": (
        "Vendor-neutral portal for distributed AI infrastructure. Authenticate with "
        "`Authorization: Bearer <token>` (create tokens under Settings > API tokens). Every error "
        'uses one envelope: `{"error": {"status", "code", "message", "fields", "request_id"}}`. '
        "Creates accept an `Idempotency-Key` header."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "APPEND_COMPONENTS": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    },
    "SECURITY": [{"bearerAuth": []}],
    "ENUM_NAME_OVERRIDES": {
        "PortSpeedEnum": "fabric.choices.PortSpeed",
        "PortStateEnum": "fabric.choices.PortState",
        "ConnectionStateEnum": "fabric.choices.ConnectionState",
        "WorkflowStatusEnum": "fabric.choices.WorkflowStatus",
        "RoleEnum": "hub.choices.Role",
        "OrganizationKindEnum": "hub.choices.OrganizationKind",
        "DeliveryStatusEnum": "hub.choices.DeliveryStatus",
        "OfferingStatusEnum": "marketplace.choices.OfferingStatus",
        "SecuritySeverityEnum": "security.choices.Severity",
        "AlertStatusEnum": "security.choices.AlertStatus",
        "AlertSourceEnum": "security.choices.AlertSource",
        "ScanActionEnum": "security.choices.ScanAction",
    },
}
IDEMPOTENCY_KEY_TTL = timedelta(hours=24)

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_FOLDER = Path(env.str("CELERY_BROKER_FOLDER", default=str(VAR_DIR / "celery")))
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "processed_folder": str(CELERY_BROKER_FOLDER / "processed"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # An unacknowledged task (its worker died) is redelivered after this many seconds. It must stay
    # above the longest retry countdown (fabric 300 s, webhooks WEBHOOK_BACKOFF_MAX_SECONDS), or
    # delayed tasks would be delivered twice; the sweepers recover sooner in most cases.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=900)}
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL or None) or None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}

# --- Webhooks and notifications ---------------------------------------------------------------
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=5.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=6)
WEBHOOK_BACKOFF_BASE_SECONDS = env.float("WEBHOOK_BACKOFF_BASE_SECONDS", default=10.0)
WEBHOOK_BACKOFF_MAX_SECONDS = env.float("WEBHOOK_BACKOFF_MAX_SECONDS", default=600.0)  # below the visibility timeout
WEBHOOK_STALL_SECONDS = env.int("WEBHOOK_STALL_SECONDS", default=300)
WEBHOOK_DELIVERY_RETENTION_DAYS = env.int("WEBHOOK_DELIVERY_RETENTION_DAYS", default=30)
NOTIFICATION_MAX_RECIPIENTS = env.int("NOTIFICATION_MAX_RECIPIENTS", default=500)
NOTIFICATION_RETENTION_DAYS = env.int("NOTIFICATION_RETENTION_DAYS", default=90)

# --- Extension points -------------------------------------------------------------------------
HUB_DASHBOARD_TILES = [
    "fabric.dashboard.metros_tile",
    "fabric.dashboard.connections_by_state_tile",
    "fabric.dashboard.busiest_connections_tile",
    "fabric.dashboard.connection_events_tile",
]

# --- Fabric -----------------------------------------------------------------------------------
FABRIC_DRIVER = env.str("FABRIC_DRIVER", default="fabric.drivers.simulated.SimulatedDriver")
FABRIC_SIMULATED = {
    "step_delay_seconds": env.float("FABRIC_SIM_STEP_DELAY", default=1.0),
    "failure_rate": env.float("FABRIC_SIM_FAILURE_RATE", default=0.05),
    "seed": env.int("FABRIC_SIM_SEED", default=None),
    "fail_steps": {},
}
FABRIC_OVERSUBSCRIPTION = env.float("FABRIC_OVERSUBSCRIPTION", default=1.0)
FABRIC_VLAN_AUTO_RANGE = (100, 4094)
FABRIC_STEP_MAX_ATTEMPTS = env.int("FABRIC_STEP_MAX_ATTEMPTS", default=5)
FABRIC_RETRY_BACKOFF_SECONDS = env.float("FABRIC_RETRY_BACKOFF_SECONDS", default=2.0)
FABRIC_RETRY_BACKOFF_MAX_SECONDS = env.float("FABRIC_RETRY_BACKOFF_MAX_SECONDS", default=300.0)
FABRIC_STEP_TIMEOUT_SECONDS = env.int("FABRIC_STEP_TIMEOUT_SECONDS", default=300)
FABRIC_STALL_SECONDS = env.int("FABRIC_STALL_SECONDS", default=120)
FABRIC_MAX_ORG_BANDWIDTH_MBPS = env.int("FABRIC_MAX_ORG_BANDWIDTH_MBPS", default=1_000_000)
FABRIC_CONNECTION_GUARDS = ["fabric.guards.max_org_bandwidth", "security.guards.policy"]

# --- Fabric telemetry (docs/TELEMETRY.md) -------------------------------------------------------
FABRIC_TELEMETRY_RETENTION_DAYS = env.int("FABRIC_TELEMETRY_RETENTION_DAYS", default=7)  # raw samples
FABRIC_TELEMETRY_ROLLUP_5M_RETENTION_DAYS = env.int("FABRIC_TELEMETRY_ROLLUP_5M_RETENTION_DAYS", default=90)
FABRIC_TELEMETRY_ROLLUP_1H_RETENTION_DAYS = env.int("FABRIC_TELEMETRY_ROLLUP_1H_RETENTION_DAYS", default=730)
FABRIC_TELEMETRY_MAX_SAMPLES = env.int("FABRIC_TELEMETRY_MAX_SAMPLES", default=10_000)  # per ingest call
FABRIC_TELEMETRY_FUTURE_TOLERANCE_SECONDS = env.int("FABRIC_TELEMETRY_FUTURE_TOLERANCE_SECONDS", default=300)
FABRIC_TELEMETRY_MAX_STATS_DAYS = env.int("FABRIC_TELEMETRY_MAX_STATS_DAYS", default=366)
FABRIC_TELEMETRY_MAX_POINTS = env.int("FABRIC_TELEMETRY_MAX_POINTS", default=10_000)  # per stats series
# The demo's beat task that keeps ACTIVE connections' telemetry flowing (off unless asked for).
FABRIC_TELEMETRY_SIMULATE = env.bool("FABRIC_TELEMETRY_SIMULATE", default=False)
FABRIC_TELEMETRY_SIMULATE_INTERVAL_SECONDS = env.int("FABRIC_TELEMETRY_SIMULATE_INTERVAL_SECONDS", default=60)

# --- Security -----------------------------------------------------------------------------------
SECURITY_SCAN_MAX_CONTENT_BYTES = env.int("SECURITY_SCAN_MAX_CONTENT_BYTES", default=32 * 1024)
SECURITY_SCAN_MAX_TOTAL_BYTES = env.int("SECURITY_SCAN_MAX_TOTAL_BYTES", default=256 * 1024)
SECURITY_SCAN_MAX_BATCH = env.int("SECURITY_SCAN_MAX_BATCH", default=100)
SECURITY_SCAN_RETENTION_DAYS = env.int("SECURITY_SCAN_RETENTION_DAYS", default=90)
SECURITY_CORRELATION_WINDOW_MINUTES = env.int("SECURITY_CORRELATION_WINDOW_MINUTES", default=30)
# Network detection (security/network.py): how much telemetry each analysis reads, at what step,
# how often the beat sweep runs, and the detectors' thresholds (fields of DetectionConfig).
SECURITY_NETWORK_LOOKBACK_SECONDS = env.int("SECURITY_NETWORK_LOOKBACK_SECONDS", default=24 * 3600)
SECURITY_NETWORK_STEP_SECONDS = env.int("SECURITY_NETWORK_STEP_SECONDS", default=60)  # raw samples
SECURITY_NETWORK_SWEEP_SECONDS = env.int("SECURITY_NETWORK_SWEEP_SECONDS", default=300)
SECURITY_NETWORK_DETECTION = {
    "spike_z": env.float("SECURITY_NETWORK_SPIKE_Z", default=6.0),
    "spike_min_ratio": env.float("SECURITY_NETWORK_SPIKE_MIN_RATIO", default=2.0),
    "cusum_h": env.float("SECURITY_NETWORK_CUSUM_H", default=12.0),
}
SECURITY_DASHBOARD_HOUR_CACHE_SECONDS = env.int("SECURITY_DASHBOARD_HOUR_CACHE_SECONDS", default=6 * 3600)
SECURITY_LIVE_REFRESH_SECONDS = env.int("SECURITY_LIVE_REFRESH_SECONDS", default=10)
