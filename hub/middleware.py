import re
import uuid

from hub import context
from hub.selectors import membership_for

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SESSION_ORG_KEY = "active_org_id"


class RequestContextMiddleware:
    """Gives each request an id (kept from ``X-Request-ID`` when sane) and records the client IP."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = context.set_current(
            context.RequestContext(request_id=request.request_id, ip_address=request.META.get("REMOTE_ADDR"))
        )
        try:
            # No URL of ours contains NUL, and PostgreSQL cannot compare one: refuse it here.
            response = _bad_path(request) if "\x00" in request.path else self.get_response(request)
        finally:
            context.reset(token)
        response["X-Request-ID"] = request.request_id
        return response


def _bad_path(request):
    from django.http import HttpResponseBadRequest

    from hub.api.errors import json_error_response

    message = "The address contains a NUL character."
    if request.path.startswith("/api/"):
        return json_error_response(request, status_code=400, code="invalid_path", message=message)
    return HttpResponseBadRequest(message, content_type="text/plain")


class ActiveOrganizationMiddleware:
    """Sets ``request.org`` and ``request.membership`` from the session's chosen organization.

    A user with no chosen (or no longer valid) organization falls back to their first membership.
    API token requests replace both in the token authentication class.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.org = None
        request.membership = None
        if request.user.is_authenticated:
            membership = membership_for(request.user, request.session.get(SESSION_ORG_KEY))
            if membership is not None:
                request.org = membership.organization
                request.membership = membership
                if request.session.get(SESSION_ORG_KEY) != membership.organization_id:
                    request.session[SESSION_ORG_KEY] = membership.organization_id  # a write: only on change
        return self.get_response(request)
