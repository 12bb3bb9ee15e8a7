from rest_framework.throttling import SimpleRateThrottle

from hub.models import APIToken


class PrincipalRateThrottle(SimpleRateThrottle):
    """One budget per API token, per logged-in user (session), or per client address (anonymous)."""

    scope = "principal"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, APIToken):
            ident = f"token:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            self.rate = self.THROTTLE_RATES["anon"]
            self.num_requests, self.duration = self.parse_rate(self.rate)
            ident = f"anon:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
