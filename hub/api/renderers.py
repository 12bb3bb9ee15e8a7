"""A JSON renderer on orjson, for endpoints whose responses are large (a page of 50 catalog rows).

It writes the same JSON as DRF's ``JSONRenderer`` (compact, UTF-8): values orjson does not know, and
date-times (orjson's own format differs from DRF's), go through DRF's encoder; a request for indented
JSON (``Accept: application/json; indent=4``) and what orjson refuses (integers beyond 64 bits) are
left to DRF's renderer. One difference: orjson writes a NaN or infinite float as null where DRF's
strict renderer fails the request.
"""

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


class OrjsonRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if self.get_indent(accepted_media_type, renderer_context or {}) is not None:
            return super().render(data, accepted_media_type, renderer_context)
        try:
            return orjson.dumps(data, default=JSONEncoder().default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)
