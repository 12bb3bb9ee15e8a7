from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _contains_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


class StrictJSONParser(JSONParser):
    """JSON, refusing NUL characters anywhere: PostgreSQL cannot store or compare them, so they
    would otherwise surface as a server error in whichever field met the database first."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if _contains_nul(data):
            raise ParseError("The request body contains a NUL character (\\u0000), which no field accepts.")
        return data
