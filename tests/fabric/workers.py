"""Real Celery worker processes for the reliability tests.

``tests.conftest.celery_worker`` runs a worker *thread* inside pytest, which cannot be killed
with -9 nor show what a separate process sees. Here each worker is ``celery -A hub worker`` in a
process group of its own (so SIGKILL reaches its pool children too), pointed at pytest-django's
test database and at a queue of its own on the test broker; the test process routes
``fabric.tasks.*`` to that queue on the producer side (routing happens where a task is sent).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
CELERY = Path(sys.executable).with_name("celery")


def test_database_url() -> str:
    """A DATABASE_URL for the database the tests use now (pytest-django's ``test_<name>``)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("Worker processes need the PostgreSQL test database.")
    credentials = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}@{host}{port}/{quote(db['NAME'], safe='')}"


def unique_queue(prefix: str = "reliab") -> str:
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class WorkerProcess:
    """``celery -A hub worker -Q <queue>`` as a subprocess; logs go to ``log_path``."""

    def __init__(self, *, queue: str, log_dir: Path, concurrency: int = 1, env: dict[str, str] | None = None):
        self.queue = queue
        self.concurrency = concurrency
        self.name = f"{queue}-{uuid.uuid4().hex[:6]}"
        self.log_path = Path(log_dir) / f"{self.name}.log"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "hub.settings",
            "DATABASE_URL": test_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        command = [
            str(CELERY),
            "-A",
            "hub",
            "worker",
            "-Q",
            self.queue,
            "-c",
            str(self.concurrency),
            "-P",
            "prefork",
            "-n",
            f"{self.name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "info",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: killpg reaches the pool children
            )
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_ready(self, timeout: float = 45.0) -> WorkerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return self
            if self.process.poll() is not None:
                pytest.fail(f"worker {self.name} exited with {self.process.returncode}:\n{self.tail()}")
            time.sleep(0.1)
        pytest.fail(f"worker {self.name} not ready within {timeout}s:\n{self.tail()}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool children die at once."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """Warm shutdown (SIGTERM to the main process), then SIGKILL the group if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        with contextlib.suppress(ProcessLookupError):  # pool children that outlived their parent
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)


@contextlib.contextmanager
def fabric_tasks_routed_to(queue: str):
    """Send ``fabric.tasks.*`` through the broker to ``queue``, then leave the Celery app as found.

    Celery caches the queue declarations (``app.amqp.queues``) the first time a task is published;
    a later fixture that changes ``task_queues`` (``tests.conftest.celery_worker``) would not be
    seen and its worker thread would not consume its own queue. So the caches are put back.
    """
    from hub.celery import app

    amqp = app.amqp
    cached = ("queues", "default_queue")
    saved_conf = {key: app.conf[key] for key in ("task_always_eager", "task_routes")}
    saved_cache = {key: amqp.__dict__[key] for key in cached if key in amqp.__dict__}
    saved_pools = (app._pool, amqp._producer_pool)
    app.conf.update(task_always_eager=False, task_routes={"fabric.tasks.*": {"queue": queue}})
    try:
        yield
    finally:
        app.conf.update(saved_conf)
        for key in cached:
            amqp.__dict__.pop(key, None)
        amqp.__dict__.update(saved_cache)
        if "queues" in saved_cache:
            saved_cache["queues"].pop(queue, None)
        app._pool, amqp._producer_pool = saved_pools


# --- Looking into the Redis broker ---------------------------------------------------------------
def redis_client():
    import redis

    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def _task_args(raw: bytes) -> tuple[str, list] | None:
    """(task name, args) of a kombu Redis message (Celery message protocol 2)."""
    try:
        payload = json.loads(raw)
        message = payload[0] if isinstance(payload, list) else payload
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return message.get("headers", {}).get("task", ""), list(args)
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def unacked_workflow_ids(queue: str) -> list[int]:
    """Workflows whose ``run_workflow`` message a worker took from ``queue`` and never acknowledged.

    The Redis transport keeps such messages in its ``unacked`` hash until ``visibility_timeout``
    (1 hour by default) has passed, then puts them back on the queue.
    """
    client = redis_client()
    ids = []
    for raw in client.hvals("unacked"):
        try:
            routing_key = json.loads(raw)[2]
        except (ValueError, IndexError, TypeError):
            continue
        parsed = _task_args(raw)
        if routing_key == queue and parsed and parsed[0] == "fabric.tasks.run_workflow" and parsed[1]:
            ids.append(int(parsed[1][0]))
    return sorted(ids)


def queued_count(queue: str) -> int:
    """Messages waiting on ``queue`` (the Redis transport keeps one list per priority)."""
    client = redis_client()
    return sum(client.llen(key) for key in client.scan_iter(match=f"{queue}*") if client.type(key) == b"list")


def purge_queue(queue: str) -> None:
    """Remove the queue's messages, waiting or unacknowledged, and its binding from the broker."""
    client = redis_client()
    for tag, raw in client.hgetall("unacked").items():
        try:
            routing_key = json.loads(raw)[2]
        except (ValueError, IndexError, TypeError):
            continue
        if routing_key == queue:
            client.pipeline().hdel("unacked", tag).zrem("unacked_index", tag).execute()
    keys = list(client.scan_iter(match=f"*{queue}*"))  # the lists and _kombu.binding.<queue>
    if keys:
        client.delete(*keys)
