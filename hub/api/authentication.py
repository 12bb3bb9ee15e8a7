from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from hub import context
from hub.services import api_token_authenticate
from hub.signals import announce_token_misuse


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <secret>``: the request acts as the token's user in the token's org."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Send the token as 'Authorization: Bearer <token>'."))
        try:
            secret = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed(_("The token is malformed.")) from exc
        token, reason = api_token_authenticate(secret)
        if token is None:
            announce_token_misuse(secret, request._request)
            raise exceptions.AuthenticationFailed(reason)
        context.bind_token(token.pk)
        django_request = request._request
        django_request.org = token.organization
        django_request.membership = token.membership
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword


class OrgSessionAuthentication(authentication.SessionAuthentication):
    """Browser session (CSRF enforced for writes); the org is the one chosen in the portal."""


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = OrgSessionAuthentication
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
