"""One error envelope for every API error:

    {"error": {"status": 400, "code": "invalid", "message": "...", "fields": {...}, "request_id": "..."}}

``fields`` maps a field name to its messages (validation errors only).
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from hub.errors import DomainError

logger = logging.getLogger(__name__)


def envelope(*, status_code: int, code: str, message: str, fields: dict | None = None, request_id: str = "") -> dict:
    body = {"status": status_code, "code": code, "message": message, "request_id": request_id}
    if fields:
        body["fields"] = fields
    return {"error": body}


def _flatten(detail) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        fields: dict[str, list[str]] = {}
        for name, value in detail.items():
            nested = _flatten(value)
            if set(nested) == {"non_field_errors"}:
                fields[str(name)] = nested["non_field_errors"]
            else:
                for sub, messages in nested.items():
                    fields[str(name) if sub == "non_field_errors" else f"{name}.{sub}"] = messages
        return fields
    if isinstance(detail, list):
        messages: list[str] = []
        fields = {}
        for index, item in enumerate(detail):
            if isinstance(item, (dict, list)):
                for sub, msgs in _flatten(item).items():
                    fields[f"{index}.{sub}" if sub != "non_field_errors" else str(index)] = msgs
            else:
                messages.append(str(item))
        if messages:
            fields["non_field_errors"] = messages
        return fields
    return {"non_field_errors": [str(detail)]}


def exception_handler(exc, context):
    request = context.get("request")
    request_id = getattr(getattr(request, "_request", request), "request_id", "")

    if isinstance(exc, DomainError):
        fields = {exc.field: [exc.message]} if exc.field else None
        set_rollback()
        return Response(
            envelope(
                status_code=exc.status_code, code=exc.code, message=exc.message, fields=fields, request_id=request_id
            ),
            status=exc.status_code,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if isinstance(exc, exceptions.ValidationError):
            fields = _flatten(exc.detail)
            first = next(iter(fields.values()))[0] if fields else "Invalid input."
            only_general = set(fields) == {"non_field_errors"}
            message = first if only_general else "The request has invalid fields."
            body = envelope(
                status_code=exc.status_code,
                code="invalid",
                message=message,
                fields=None if only_general else fields,
                request_id=request_id,
            )
        else:
            detail = exc.detail
            message = str(detail if not isinstance(detail, (list, dict)) else next(iter(_flatten(detail).values()))[0])
            code = detail.code if hasattr(detail, "code") else exc.default_code
            if isinstance(exc, exceptions.NotAuthenticated):
                message = "Authentication required: log in or send 'Authorization: Bearer <token>'."
            body = envelope(status_code=exc.status_code, code=code, message=message, request_id=request_id)
        set_rollback()
        return Response(body, status=exc.status_code, headers=headers)

    logger.exception("Unhandled API error", exc_info=exc)
    set_rollback()
    return Response(
        envelope(
            status_code=500,
            code="server_error",
            message="Something went wrong on our side. Quote the request id if you contact support.",
            request_id=request_id,
        ),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def json_error_response(request, *, status_code: int, code: str, message: str) -> JsonResponse:
    """For errors raised outside DRF views (unknown API URLs, server errors) under /api/."""
    return JsonResponse(
        envelope(status_code=status_code, code=code, message=message, request_id=getattr(request, "request_id", "")),
        status=status_code,
    )
