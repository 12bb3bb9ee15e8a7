"""Per-request facts (request id, client address, API token) that services read when they audit.

Middleware fills them for web requests; DRF's token authentication adds the token; Celery tasks
and management commands run with the defaults (no request).
"""

from contextvars import ContextVar
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str = ""
    ip_address: str | None = None
    token_id: int | None = None


_EMPTY = RequestContext()
_current: ContextVar[RequestContext] = ContextVar("hub_request_context", default=_EMPTY)


def current() -> RequestContext:
    return _current.get()


def set_current(ctx: RequestContext):
    return _current.set(ctx)


def reset(token) -> None:
    _current.reset(token)


def bind_token(token_id: int) -> None:
    _current.set(replace(_current.get(), token_id=token_id))
