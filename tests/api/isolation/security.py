"""Tenant-isolation cases of security (merged into MATRIX by tests/api/test_isolation.py)."""

from tests.api.isolation import API, PORTAL, Case, _r  # noqa: F401

CASES: dict[str, Case] = {}


def extend_world(world) -> None:
    """Add org A's objects this area's URLs name to ``world.extra``."""


def assert_untouched(world, *, created_by_a: bool) -> None:
    """Fail if a refused request changed org A's objects of this area."""
