"""gunicorn settings for the API: gevent workers, so a long-poll ties up no server worker."""

import os

bind = os.environ.get("NUBE_API_BIND", "127.0.0.1:8080")
worker_class = "gevent"
workers = int(os.environ.get("NUBE_API_WORKERS", "2"))
worker_connections = 1000
timeout = 90  # above the longest wait (60 s)
graceful_timeout = 10
accesslog = "-"
errorlog = "-"
