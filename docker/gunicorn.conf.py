"""gunicorn settings for the fhirtrd HTTP service (docker and any production host).

Run: gunicorn -c docker/gunicorn.conf.py 'fhirtrd.api:create_app()'
The app reads its own settings from FHIRTRD_CONFIG / FHIRTRD_* (docs/service.md); the variables
below are read only here, by gunicorn.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8080")
# Classification is CPU-bound Python: one process per core; threads only overlap FHIR fetches.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
worker_class = "gthread"
# Load the app (and the mappings) once in the master; workers share it copy-on-write.
preload_app = True
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
max_requests = 10_000  # recycle workers now and then
max_requests_jitter = 500
limit_request_line = 8190
limit_request_fields = 100
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Behind a reverse proxy that terminates TLS, trust its X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server):  # type: ignore[no-untyped-def]
    """Refuse to start several workers that would each keep their own JWT replay cache."""
    from fhirtrd.api.config import check_workers, load_settings
    from fhirtrd.api.errors import ConfigError

    try:
        check_workers(load_settings(), server.cfg.workers)
    except ConfigError as exc:
        raise SystemExit(f"fhirtrd: {exc}") from None
