"""gunicorn's settings for the web processes (read from the working directory: ``gunicorn hub.wsgi``).

Threaded workers: a request spends much of its time waiting on PostgreSQL and Redis, and a worker's
other threads serve meanwhile (a sync worker would sit idle); they also keep HTTP connections alive
between requests, where a sync worker closes each one. Each thread holds its own database connection
(``CONN_MAX_AGE``), so workers x threads is the number of connections the web tier keeps open.
Scale with ``-w`` (or ``WEB_CONCURRENCY``) per machine and with more machines; ``GUNICORN_THREADS``
sets the threads per worker.
"""

import os

worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
