"""Fabric drivers: the boundary between workflows and the network that carries them.

A driver implements one method per workflow step (see ``fabric.workflows.STEPS``); each receives
the workflow's subject (a Port or a Connection) and must be idempotent, because a step is retried
after transient errors and re-run when a worker dies mid-step. ``TransientDriverError`` asks for a
retry with backoff; any other ``DriverError`` fails the workflow with its message.
"""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string


class DriverError(Exception):
    """A permanent failure: retrying will not help. The message is shown to users."""


class TransientDriverError(DriverError):
    """A temporary failure (timeout, busy device): the step is retried with backoff."""


class FabricDriver:
    """The interface. Steps not overridden succeed without doing anything.

    ``immediate``: the steps finish synchronously, with no device or network to wait for (and no
    use of the database). The engine then runs a workflow's remaining steps back to back inside one
    transaction under the workflow's row lock; a driver that talks to devices leaves it False, so
    that no lock or transaction is held while it waits.
    """

    name = "base"
    immediate = False

    def run(self, step: str, subject) -> str:
        handler = getattr(self, step, None)
        if handler is None:
            raise DriverError(f"The {self.name} driver cannot run the step {step!r}.")
        return handler(subject) or ""


@cache
def _driver_class(path: str):
    return import_string(path)


def get_driver() -> FabricDriver:
    return _driver_class(settings.FABRIC_DRIVER)()


__all__ = ["DriverError", "FabricDriver", "TransientDriverError", "get_driver"]
