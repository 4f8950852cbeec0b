"""Settings driven by environment variables with safe development defaults.

PORTAL_ENV=production switches on the hardened profile (no debug, secure
cookies, HSTS, mandatory secrets). Everything else reads one variable each.
"""

import base64
import hashlib
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # embedded PostgreSQL, broker folders, mail files


def env(name, default=None):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


PORTAL_ENV = env("PORTAL_ENV", "development")
# fail closed (issue 24): "PRODUCTION" or a typo must not silently run the development
# profile (DEBUG, the sandbox cashier); only the documented values start
PORTAL_ENVS = ("development", "production")
if PORTAL_ENV not in PORTAL_ENVS:
    raise ImproperlyConfigured(
        f"PORTAL_ENV={PORTAL_ENV!r} is not one of {', '.join(PORTAL_ENVS)} (lower case)."
    )
PRODUCTION = PORTAL_ENV == "production"
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)

_DEV_SECRET = "dev-only-insecure-secret-key-change-me-0123456789abcdefghijklmnopqrstuvwxyz"
SECRET_KEY = env("SECRET_KEY", None if PRODUCTION else _DEV_SECRET)
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set in production")

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1],testserver"
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")


def _derived_key(purpose):
    """Development-only key derived from SECRET_KEY; production must set its own."""
    digest = hashlib.sha256(f"{purpose}:{SECRET_KEY}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


# Fernet key(s) for personal data at rest (comma-separated: first encrypts, all decrypt).
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS") or (
    [] if PRODUCTION else [_derived_key("field-encryption")]
)
# HMAC key for identity numbers (one identity, one trial) — never the plain number.
IDENTITY_HASH_KEY = env("IDENTITY_HASH_KEY") or ("" if PRODUCTION else _derived_key("identity"))
if PRODUCTION and (not FIELD_ENCRYPTION_KEYS or not IDENTITY_HASH_KEY):
    raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS and IDENTITY_HASH_KEY must be set")

# Service token the model gateway presents to /api/v1/gateway/*.
GATEWAY_SERVICE_TOKEN = env("GATEWAY_SERVICE_TOKEN") or ("" if PRODUCTION else "dev-gateway-token")
# The most one API call may cost; a larger figure is a gateway bug, refused (amount_too_large).
GATEWAY_MAX_CHARGE = Decimal(env("GATEWAY_MAX_CHARGE", "10000.000000"))
# The most events one usage/batch request may carry (R-USE-1 asks for at least 1,000).
GATEWAY_BATCH_LIMIT = int(env("GATEWAY_BATCH_LIMIT", "5000"))
if GATEWAY_BATCH_LIMIT < 1000:
    raise ImproperlyConfigured("GATEWAY_BATCH_LIMIT must be at least 1000 (R-USE-1)")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "djmoney",
    "django_fsm",
    "django_celery_beat",
    "axes",  # login throttling and lockout
    "django_otp",  # staff second factor (TOTP)
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",  # one-time enrolment codes another admin issues
    "ninja",  # the gateway docs page uses django-ninja's bundled Swagger assets, no CDN
    # project apps, bottom layer first (README "Layout")
    "core",
    "ops",
    "notices",
    "accounts",
    "billing",
    "topups",
    "invoices",
    "refunds",
    "disputes",
    "console",  # pages that span apps, read through their selectors
]

MIDDLEWARE = [
    "ops.observability.RequestIdMiddleware",  # request id on every log line; gateway metrics
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified()
    "accounts.otp.StaffSecondFactorMiddleware",  # the admin needs the second factor
    "core.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: answers 429 to a locked-out login
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.portal",
            ],
        },
    },
]

# PostgreSQL is the only database (issue 20). scripts/run.sh and scripts/test.sh start an
# embedded server (scripts/embedded_pg.py) and set DATABASE_URL when it is not set.
# Without it, outside production, a plain `manage.py` talks to the embedded server that
# `scripts/run.sh` keeps in PORTAL_VAR_DIR/pg (commands that need no database work anyway).
_EMBEDDED_URL = f"postgres://postgres@{quote(str(VAR_DIR / 'pg'), safe='')}:5432/portal"
DATABASE_URL = env("DATABASE_URL", "" if PRODUCTION else _EMBEDDED_URL)
if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured(
        (
            f"DATABASE_URL names a {DATABASE_URL.split(':', 1)[0]} database"
            if DATABASE_URL
            else "DATABASE_URL is not set"
        )
        + ": the portal runs on PostgreSQL only (postgres://user@host:port/name). Run it "
        "with `bash scripts/run.sh` and the tests with `bash scripts/test.sh`, which start "
        "an embedded PostgreSQL server when DATABASE_URL is unset, or set DATABASE_URL."
    )
# Persistent connections by default (issue 25): a new PostgreSQL connection per request
# costs more than the gateway's whole statement; a connection kept past a database
# restart is checked once per request before its first query (CONN_HEALTH_CHECKS).
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=int(env("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", True),
    )
}
# Behind PgBouncer in transaction pooling (README "PgBouncer"): a server-side cursor would
# outlive the transaction's server connection, so Django must not open any.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DB_DISABLE_SERVER_SIDE_CURSORS")

# PostgreSQL roles (README "PostgreSQL roles"): migrations run as the tables' owner, the
# portal as an owner-less role set up by `manage.py setup_db_roles`, which may never
# UPDATE, DELETE or TRUNCATE these append-only tables: the books (postings and their
# transactions) and the case history (core.AuditRecord). `manage.py rotate_keys`, which
# re-seals audit details, therefore runs as the owner, like `migrate`.
DB_APPEND_ONLY_TABLES = ["billing_posting", "billing_ledgertransaction", "core_auditrecord"]
# ...and may only UPDATE these columns of these tables, never DELETE or TRUNCATE: a usage
# event is settled once (migration billing/0016 refuses any other change, for every role).
# The owner-less role `manage.py setup_db_roles` prepares (its password, if any, is read
# by that command from PORTAL_APP_DB_PASSWORD and kept nowhere else).
PORTAL_APP_DB_ROLE = env("PORTAL_APP_DB_ROLE", "portal_app")
DB_SETTLE_ONLY_COLUMNS = {
    "billing_usageevent": [
        "transaction_id",
        "settled_at",
        "trial_micro",
        "discount_micro",
        "cash_micro",
        "arrears_micro",
        "package_micro",
        "split",
    ]
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "accounts.throttling.ThrottledLoginBackend",  # django-axes: first, refuses locked-out logins
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling (django-axes), users and staff alike: five failures for one login name
# from one address lock that pair out for AXES_COOLOFF_MINUTES; a success resets the count.
AXES_FAILURE_LIMIT = int(env("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(env("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"
AXES_SENSITIVE_PARAMETERS = ["username", "password"]
AXES_VERBOSE = False
# Staff second factor (TOTP, django-otp): on in production, off elsewhere so the demo
# logins and tests keep working; when on, every staff member types a one-time code
# after the password before the admin opens (accounts/otp.py).
STAFF_OTP_REQUIRED = env_bool("STAFF_OTP_REQUIRED", PRODUCTION)
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", "Balance operations")
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("email", "phone", "first_name", "last_name")},
    },
    {"NAME": "accounts.passwords.NotBasedOnEmailValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env("LANGUAGE_CODE", "zh-hans")  # Chinese first (R-ADM-6); English on request
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
# Page strings marked for translation; compiled by the setup (scripts/_venv.sh).
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"  # never served directly: files are encrypted, served by views
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Money: CNY only.
CURRENCIES = ("CNY",)
DEFAULT_CURRENCY = "CNY"
CURRENCY_CHOICES = [("CNY", "CNY ¥")]

# Redis / Celery
REDIS_URL = env("REDIS_URL", "")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "celery" / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", None)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Redis is a cache, PostgreSQL the truth: an unreachable Redis answers like an empty
# cache (logged) instead of failing the request (core/cache.py, R-USE-6).
CACHES = {
    "default": (
        {"BACKEND": "core.cache.ForgivingRedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Email / SMS
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = str(VAR_DIR / "mail")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("EMAIL_PORT", "25"))
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "billing@portal.example")

# Uploads (verification documents, proof materials)
UPLOAD_MAX_BYTES = int(env("UPLOAD_MAX_BYTES", str(5 * 1024 * 1024)))
FILE_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env("DATA_UPLOAD_MAX_MEMORY_SIZE", str(10 * 1024 * 1024)))

# Business settings (agreement-derived defaults; staff-editable ones live in the DB)
IDENTITY_MAX_ACCOUNTS = int(env("IDENTITY_MAX_ACCOUNTS", "1"))
# Issue 13: how long the link that verifies a new account's email address stays valid.
EMAIL_VERIFICATION_MAX_AGE_HOURS = int(env("EMAIL_VERIFICATION_MAX_AGE_HOURS", "48"))

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # probes reach the pods over plain HTTP inside the cluster: no redirect for them
    SECURE_REDIRECT_EXEMPT = [r"^ops/health/"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "ops.observability.RequestIdFilter"},
        "redact": {"()": "ops.observability.RedactFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "ops.observability.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            # structured (one JSON object a line) in production, readable in development
            "formatter": env("LOG_FORMAT", "json" if PRODUCTION else "plain"),
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
# Health and metrics (ops): /ops/health/live/, /ops/health/ready/, /ops/metrics/.
METRICS_TOKEN = env("METRICS_TOKEN", "")
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", not PRODUCTION)
JOB_STALE_FACTOR = int(env("JOB_STALE_FACTOR", "5"))  # interval jobs late after 5 intervals
# prometheus_client's multiprocess mode (several web/worker processes): the directory each
# process writes its counters to, emptied by whoever starts them (scripts/run.sh does).
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", "")

# Notices (notices app): unread count in the header, SMS backend, delivery retry.
TEMPLATES[0]["OPTIONS"]["context_processors"].append("notices.context_processors.notices")
SMS_BACKEND = env("SMS_BACKEND", "notices.sms.LoggingSMSBackend")
NOTICE_MAX_ATTEMPTS = int(env("NOTICE_MAX_ATTEMPTS", "8"))
NOTICE_RETRY_BASE_SECONDS = int(env("NOTICE_RETRY_BASE_SECONDS", "60"))
NOTICE_RETRY_MAX_SECONDS = int(env("NOTICE_RETRY_MAX_SECONDS", str(6 * 3600)))

# --- Top-ups, trial funds, Alipay (topups) ---
TOPUP_MIN = Decimal(env("TOPUP_MIN", "1.00"))
TOPUP_MAX = Decimal(env("TOPUP_MAX", "50000.00"))
# Invoices (invoices): the smallest amount one invoice request may ask for (whole fen).
INVOICE_MIN_AMOUNT = Decimal(env("INVOICE_MIN_AMOUNT", "1.00"))
TOPUP_EXPIRE_MINUTES = int(env("TOPUP_EXPIRE_MINUTES", "120"))  # unpaid Alipay orders expire
TOPUP_BANK_EXPIRE_HOURS = int(env("TOPUP_BANK_EXPIRE_HOURS", "168"))  # a wire takes days
TRIAL_AMOUNT = env("TRIAL_AMOUNT", "20.00")  # defaults of the staff-editable TrialSettings
TRIAL_VALIDITY_DAYS = int(env("TRIAL_VALIDITY_DAYS", "30"))
# Four eyes (R-ADM-4): a hand-confirmed credit above this many CNY always needs a second
# finance approver (manual payments and differing amounts need one whatever the amount).
TOPUP_FOUR_EYES_LIMIT = Decimal(env("TOPUP_FOUR_EYES_LIMIT", "10000.00"))
# Upper bounds of what staff may set (R-ADM-5): promotions, trial settings, grant validity.
PROMOTION_MAX_BENEFIT = Decimal(env("PROMOTION_MAX_BENEFIT", "1000.00"))  # CNY, fixed or cap
PROMOTION_MAX_PERCENT = Decimal(env("PROMOTION_MAX_PERCENT", "50"))
PROMOTION_MAX_QUANTITY = int(env("PROMOTION_MAX_QUANTITY", "100000"))
PROMOTION_MAX_VALIDITY_DAYS = int(env("PROMOTION_MAX_VALIDITY_DAYS", "365"))
TRIAL_MAX_AMOUNT = Decimal(env("TRIAL_MAX_AMOUNT", "200.00"))
# Spend limits (R-USE-7): the highest monthly or daily limit a user may set (CNY).
SPEND_LIMIT_MAX = Decimal(env("SPEND_LIMIT_MAX", "1000000.00"))
TRIAL_MAX_VALIDITY_DAYS = int(env("TRIAL_MAX_VALIDITY_DAYS", "365"))
GRANT_MAX_VALIDITY_DAYS = int(env("GRANT_MAX_VALIDITY_DAYS", "730"))  # from the change
BANK_RECEIVING_ACCOUNT = {
    "holder": env("BANK_ACCOUNT_HOLDER", "Example Model Platform Co., Ltd."),
    "bank": env("BANK_NAME", "Example Bank, Beijing Branch"),
    "number": env("BANK_ACCOUNT_NUMBER", "6200 0000 0000 0000 000"),
}
# The sandbox cashier plays Alipay inside the portal with the dev-only keys in
# topups/sandbox_keys/; it can never be on in production.
ALIPAY_SANDBOX = env_bool("ALIPAY_SANDBOX", not PRODUCTION)
# Where this portal is reached from its own workers: the sandbox gateway is a path of the
# portal, so a Celery worker calling it (Alipay refunds) needs the base URL.
PORTAL_BASE_URL = env("PORTAL_BASE_URL", "http://127.0.0.1:8000" if ALIPAY_SANDBOX else "")
ALIPAY_HTTP_TIMEOUT = int(env("ALIPAY_HTTP_TIMEOUT", "15"))  # seconds per Alipay call
_SANDBOX_KEYS = BASE_DIR / "topups" / "sandbox_keys"
ALIPAY_APP_ID = env("ALIPAY_APP_ID", "2021000000000000" if ALIPAY_SANDBOX else "")
ALIPAY_SELLER_ID = env("ALIPAY_SELLER_ID", "2088000000000000" if ALIPAY_SANDBOX else "")
ALIPAY_GATEWAY = env(
    "ALIPAY_GATEWAY",
    "/topups/sandbox/gateway/" if ALIPAY_SANDBOX else "https://openapi.alipay.com/gateway.do",
)
ALIPAY_APP_PRIVATE_KEY = env("ALIPAY_APP_PRIVATE_KEY", "")
ALIPAY_APP_PRIVATE_KEY_PATH = env(
    "ALIPAY_APP_PRIVATE_KEY_PATH",
    str(_SANDBOX_KEYS / "app_private_key.pem") if ALIPAY_SANDBOX else "",
)
ALIPAY_PUBLIC_KEY = env("ALIPAY_PUBLIC_KEY", "")
ALIPAY_PUBLIC_KEY_PATH = env(
    "ALIPAY_PUBLIC_KEY_PATH",
    str(_SANDBOX_KEYS / "alipay_public_key.pem") if ALIPAY_SANDBOX else "",
)
if PRODUCTION:
    from config import production_checks as _checks  # noqa: E402

    if ALIPAY_SANDBOX:
        raise ImproperlyConfigured("ALIPAY_SANDBOX cannot be on in production")
    # The sandbox keys are public: compare the key's RSA public numbers, not its text, so
    # no re-encoding (bare base64, other PEM header, DER file, private half) slips through.
    for _name in ("ALIPAY_APP_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY"):
        _problem = _checks.sandbox_key_problem(_name, globals()[_name], globals()[f"{_name}_PATH"])
        if _problem:
            raise ImproperlyConfigured(_problem)
    if not ALIPAY_SELLER_ID or ALIPAY_SELLER_ID == "2088000000000000":
        raise ImproperlyConfigured("ALIPAY_SELLER_ID must be set in production")
    _problem = _checks.token_problem(GATEWAY_SERVICE_TOKEN)
    if _problem:
        raise ImproperlyConfigured(_problem)
    # Emailed links (email verification) and Alipay's return address are built on it.
    if not PORTAL_BASE_URL.startswith("https://"):
        raise ImproperlyConfigured("PORTAL_BASE_URL must be the portal's https:// address")
# Metered usage (R-USE-5): the settler takes chunks of at most USAGE_SETTLE_CHUNK pending
# events; each run of the settle_usage job keeps settling for USAGE_SETTLER_SECONDS
# (beat starts one a minute), pausing USAGE_SETTLE_IDLE seconds when nothing is pending.
USAGE_SETTLE_CHUNK = int(env("USAGE_SETTLE_CHUNK", "5000"))
USAGE_SETTLER_SECONDS = float(env("USAGE_SETTLER_SECONDS", "55"))
USAGE_SETTLE_IDLE = float(env("USAGE_SETTLE_IDLE", "0.05"))
# Scaling settlement out: accounts fall into USAGE_SETTLER_SLOTS slots (id modulo), each
# held by one settler at a time (a PostgreSQL advisory lock); the Celery worker runs
# USAGE_SETTLERS continuous settler chains, which share the slots evenly.
USAGE_SETTLER_SLOTS = int(env("USAGE_SETTLER_SLOTS", "16"))
USAGE_SETTLERS = int(env("USAGE_SETTLERS", "1"))
# The grant expiry sweep waits this many seconds for ingestion's gate, else tries next run.
USAGE_EXPIRY_GATE_WAIT = float(env("USAGE_EXPIRY_GATE_WAIT", "2"))

# Gateway token failures per client address and window before it gets 429 (and an alert).
GATEWAY_AUTH_FAILURE_LIMIT = int(env("GATEWAY_AUTH_FAILURE_LIMIT", "20"))
GATEWAY_AUTH_WINDOW_SECONDS = int(env("GATEWAY_AUTH_WINDOW_SECONDS", "60"))
# Where config/urls.py mounts the gateway API (ops.observability counts its answers).
GATEWAY_PATH_PREFIX = "/api/v1/gateway/"
# Gateway docs and schema: open in development, service token or staff login in production.
GATEWAY_DOCS_PUBLIC = env_bool("GATEWAY_DOCS_PUBLIC", not PRODUCTION)
# The JSON APIs on their own lean handler (billing/lean.py, issue 25): off serves them
# through the pages' full middleware stack (a comparison, not a deployment).
GATEWAY_LEAN_PATH = env_bool("GATEWAY_LEAN_PATH", True)
# The user's own API (/api/v1/me/, issue 27): calls per API key and minute before 429.
ME_API_RATE_PER_MINUTE = int(env("ME_API_RATE_PER_MINUTE", "120"))
# The longest date range one usage question may cover (days, both ends included).
ME_API_MAX_DAYS = 92
if CELERY_BROKER_URL == "filesystem://":
    # kombu keeps its exchange table in ./control unless told otherwise: keep it under var/.
    CELERY_BROKER_TRANSPORT_OPTIONS["control_folder"] = str(VAR_DIR / "celery" / "control")
