"""The simulated driver used by the demo and the tests.

It models the time each step takes and its failures, set in ``FABRIC_SIMULATED``:
``step_delay_seconds``, ``failure_rate`` (transient failures, retried), ``seed`` (a fixed seed makes
runs repeatable) and ``fail_steps`` ({step: "transient:N" | "permanent"}) to script failures in
tests. VLANs and capacity are the database's business (constraints and row locks in services);
the driver only "programs the devices".
"""

import random
import threading
import time
from collections import defaultdict

from django.conf import settings

from fabric.drivers import DriverError, FabricDriver, TransientDriverError

_scripted_failures: dict[tuple[str, str], int] = defaultdict(int)
_lock = threading.Lock()


class SimulatedDriver(FabricDriver):
    name = "simulated"

    def __init__(self):
        config = settings.FABRIC_SIMULATED
        self.delay = float(config.get("step_delay_seconds", 0))
        self.failure_rate = float(config.get("failure_rate", 0))
        self.fail_steps = dict(config.get("fail_steps", {}))
        seed = config.get("seed")
        self.random = random.Random(seed)  # noqa: S311 - simulation, not cryptography

    @property
    def immediate(self) -> bool:
        """At 0 s a step the simulator has nothing to wait for (see ``FabricDriver.immediate``)."""
        return not self.delay

    def run(self, step: str, subject) -> str:
        if self.delay:
            time.sleep(self.delay)
        self._maybe_fail(step, subject)
        return f"{step.replace('_', ' ')} done on {self._where(subject)}"

    def _where(self, subject) -> str:
        if hasattr(subject, "a_port"):
            return f"{subject.a_port.metro.code} VLAN {subject.a_vlan} <-> {subject.z_port.metro.code} VLAN {subject.z_vlan}"
        return f"{subject.metro.code} port {subject.name}"

    def _maybe_fail(self, step: str, subject) -> None:
        scripted = self.fail_steps.get(step)
        if scripted == "permanent":
            raise DriverError(f"Simulated permanent failure in {step.replace('_', ' ')}.")
        if scripted and scripted.startswith("transient:"):
            times = int(scripted.split(":", 1)[1])
            key = (step, str(subject.public_id))
            with _lock:
                _scripted_failures[key] += 1
                failed = _scripted_failures[key]
            if failed <= times:
                raise TransientDriverError(f"Simulated timeout in {step.replace('_', ' ')} (attempt {failed}).")
        if self.failure_rate and self.random.random() < self.failure_rate:
            raise TransientDriverError(f"Simulated device timeout in {step.replace('_', ' ')}.")


def reset_scripted_failures() -> None:
    with _lock:
        _scripted_failures.clear()
