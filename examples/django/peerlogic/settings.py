"""Settings of the guide's example app. The database is PostgreSQL, configured from the environment (the
function's env_vars in ferry.yaml), with libpq's own variable names."""
import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "ferry-example-not-secret")
DEBUG = False
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost").split(",")]
INSTALLED_APPS = ["django.contrib.contenttypes", "core"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PGDATABASE", "peerlogic"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
