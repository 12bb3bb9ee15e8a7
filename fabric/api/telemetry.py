"""Telemetry API: bulk ingest (one connection or many) and the utilisation stats of a connection.

Samples are checked by ``fabric.telemetry.ingest`` in one plain loop rather than DRF serializers (10,000
per call at 50,000 a second); the serializers below describe the payloads for the OpenAPI schema.
"""

import json
from datetime import UTC, timedelta

import orjson
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from fabric import selectors, telemetry
from hub.api.idempotency import run_idempotent
from hub.roles import Action

# Digits to "0", anything else to " ": a run of 19 zeros in the translation is an integer of 19 or
# more digits, which may be outside the 64 bits orjson reads as integers (it would give a float).
_DIGITS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_LONG_NUMBER = b"0" * 19


class TelemetryJSONParser(JSONParser):
    """JSON refusing NUL characters, checked on the raw text in one pass (the generic parser walks
    every value, which costs more than validating 10,000 samples).

    Parsed with orjson, two to three times faster than the standard library on 10,000 samples. A
    body orjson refuses (NaN, a byte-order mark, a lone surrogate...) or that has a number of 19
    digits or more (orjson reads one outside 64 bits as a float) goes to ``json.loads`` as before,
    so every body parses to exactly what it did and each sample gets the same error report.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        if b"\\u0000" in raw or b"\x00" in raw:
            raise ParseError("The request body contains a NUL character (\\u0000), which no field accepts.")
        if _LONG_NUMBER not in raw.translate(_DIGITS):
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass  # the standard library decides, and words the error
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ParseError(f"Malformed JSON: {exc}") from exc


# --- Schema ------------------------------------------------------------------------------------------
class SampleSerializer(serializers.Serializer):
    time = serializers.DateTimeField(help_text="End of the interval: ISO 8601 with a time zone, or Unix seconds.")
    interval_seconds = serializers.IntegerField(
        min_value=1, max_value=telemetry.MAX_INTERVAL_SECONDS, required=False, default=60
    )
    bytes_in = serializers.IntegerField(min_value=0, help_text="Bytes received in the interval (a delta).")
    bytes_out = serializers.IntegerField(min_value=0, help_text="Bytes sent in the interval (a delta).")
    packets_in = serializers.IntegerField(min_value=0)
    packets_out = serializers.IntegerField(min_value=0)
    drops = serializers.IntegerField(min_value=0, required=False, default=0)
    country = serializers.CharField(
        min_length=2, max_length=2, required=False, help_text="Destination country, ISO 3166-1 alpha-2."
    )


class BulkSampleSerializer(SampleSerializer):
    connection = serializers.UUIDField(help_text="The id of one of your connections.")


class IngestRequestSerializer(serializers.Serializer):
    samples = SampleSerializer(many=True, help_text="1 to 10,000 samples.")


class BulkIngestRequestSerializer(serializers.Serializer):
    samples = BulkSampleSerializer(many=True, help_text="1 to 10,000 samples, each naming its connection.")


class SampleErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the sample in `samples`.")
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Samples stored.")
    rejected = serializers.IntegerField(help_text="Samples refused; see `errors`.")
    errors = SampleErrorSerializer(many=True)


class StatsPointSerializer(serializers.Serializer):
    time = serializers.DateTimeField(help_text="Start of the step.")
    bps_in = serializers.FloatField()
    bps_out = serializers.FloatField()
    percent_in = serializers.FloatField(allow_null=True, help_text="Of the connection's bandwidth.")
    percent_out = serializers.FloatField(allow_null=True)
    bytes_in = serializers.IntegerField()
    bytes_out = serializers.IntegerField()
    packets_in = serializers.IntegerField()
    packets_out = serializers.IntegerField()
    drops = serializers.IntegerField()


class StatsSummarySerializer(serializers.Serializer):
    bytes_in = serializers.IntegerField()
    bytes_out = serializers.IntegerField()
    avg_bps_in = serializers.FloatField()
    avg_bps_out = serializers.FloatField()
    peak_bps_in = serializers.FloatField(allow_null=True)
    peak_bps_out = serializers.FloatField(allow_null=True)
    p95_bps_in = serializers.FloatField(allow_null=True, help_text="95th percentile of the step averages.")
    p95_bps_out = serializers.FloatField(allow_null=True)
    p95_percent = serializers.FloatField(allow_null=True, help_text="p95 of max(in, out) over the bandwidth.")


class StatsSerializer(serializers.Serializer):
    connection = serializers.UUIDField()
    bandwidth_mbps = serializers.IntegerField()
    from_ = serializers.DateTimeField()
    to = serializers.DateTimeField()
    step = serializers.IntegerField(help_text="Seconds per point.")
    source = serializers.ChoiceField(choices=["raw", "rollup_5m", "rollup_1h"])
    summary = StatsSummarySerializer()
    points = StatsPointSerializer(many=True, help_text="Steps without data are left out.")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


def stats_as_dict(connection, stats: telemetry.Stats) -> dict:
    return {
        "connection": connection.public_id,
        "bandwidth_mbps": connection.bandwidth_mbps,
        "from": stats.since,
        "to": stats.until,
        "step": stats.step_seconds,
        "source": stats.source,
        "summary": stats.summary,
        "points": [
            {
                "time": p.time,
                "bps_in": p.bps_in,
                "bps_out": p.bps_out,
                "percent_in": stats.percent(p.bps_in),
                "percent_out": stats.percent(p.bps_out),
                "bytes_in": p.bytes_in,
                "bytes_out": p.bytes_out,
                "packets_in": p.packets_in,
                "packets_out": p.packets_out,
                "drops": p.drops,
            }
            for p in stats.points
        ],
    }


# --- Views -------------------------------------------------------------------------------------------
EXAMPLE_SAMPLE = {
    "time": "2026-11-27T12:00:00Z",
    "interval_seconds": 60,
    "bytes_in": 750_000_000,
    "bytes_out": 120_000_000,
    "packets_in": 520_000,
    "packets_out": 98_000,
    "drops": 0,
    "country": "DE",
}
INGEST_RESPONSES = {
    201: OpenApiResponse(IngestResultSerializer, description="At least one sample stored; the rest in `errors`."),
    400: OpenApiResponse(description="Malformed JSON, no or too many samples, or no valid sample."),
}


def _samples_of(request):
    if not isinstance(request.data, dict):
        raise ValidationError({"samples": ["Send a JSON object with the samples under 'samples'."]})
    return request.data.get("samples")


def _respond(result: telemetry.IngestResult) -> Response:
    if not result.accepted:
        # Nothing stored: an error, with each sample's problems under "samples.<index>.<field>".
        raise ValidationError({"samples": {error["index"]: error["fields"] for error in result.errors}})
    body = {"accepted": result.accepted, "rejected": result.rejected, "errors": result.errors}
    return Response(body, status=status.HTTP_201_CREATED)


class ConnectionTelemetryView(APIView):
    """Report traffic samples of one of your connections."""

    required_action = Action.FABRIC_MANAGE
    parser_classes = [TelemetryJSONParser]

    @extend_schema(
        operation_id="connections_telemetry_create",
        request=IngestRequestSerializer,
        responses=INGEST_RESPONSES,
        examples=[OpenApiExample("One sample", value={"samples": [EXAMPLE_SAMPLE]}, request_only=True)],
        description=(
            "Up to 10,000 samples per call. Valid samples are stored even when others are refused; "
            "each refused one is reported with its index and field errors. Accepts `Idempotency-Key`."
        ),
    )
    def post(self, request, public_id):
        connection = get_object_or_404(selectors.connection_list(org=request._request.org), public_id=public_id)

        def handler():
            result = telemetry.telemetry_ingest(
                membership=request._request.membership, connection=connection, samples=_samples_of(request)
            )
            return _respond(result)

        return run_idempotent(request, handler)


class BulkTelemetryView(APIView):
    """Report traffic samples of many of your connections in one call."""

    required_action = Action.FABRIC_MANAGE
    parser_classes = [TelemetryJSONParser]

    @extend_schema(
        operation_id="telemetry_create",
        request=BulkIngestRequestSerializer,
        responses=INGEST_RESPONSES,
        examples=[
            OpenApiExample(
                "Two connections",
                value={
                    "samples": [
                        {**EXAMPLE_SAMPLE, "connection": "3f1c2b8e-7d4a-4c55-9a51-2f6f0d6f7a10"},
                        {**EXAMPLE_SAMPLE, "connection": "9b0e5c1d-2a3f-4e8b-8c7d-6a5b4c3d2e1f"},
                    ]
                },
                request_only=True,
            )
        ],
        description=(
            "Up to 10,000 samples per call, each naming its `connection`. A sample for a connection "
            "your organization did not order is refused (per sample), the others are stored."
        ),
    )
    def post(self, request):
        def handler():
            result = telemetry.telemetry_ingest_bulk(
                membership=request._request.membership, samples=_samples_of(request)
            )
            return _respond(result)

        return run_idempotent(request, handler)


def _parse_when(request, name: str, default):
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    parsed = None
    try:
        parsed = parse_datetime(value.replace(" ", "+"))  # a "+" arrives as a space when not URL-encoded
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValidationError({name: ["Give an ISO 8601 date-time, for example 2026-01-31T12:00:00Z."]})
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    # In UTC: Python accepts offsets up to ±24 h, PostgreSQL only up to ±15:59.
    return parsed.astimezone(UTC)


class ConnectionStatsView(APIView):
    """Utilisation of a connection over a window: rates in and out, percent of bandwidth, p95."""

    required_action = Action.FABRIC_VIEW

    @extend_schema(
        operation_id="connections_stats_retrieve",
        parameters=[
            OpenApiParameter("from", str, description="Start (ISO 8601). Default: 24 hours before `to`."),
            OpenApiParameter("to", str, description="End (ISO 8601). Default: now."),
            OpenApiParameter(
                "step",
                int,
                description=(
                    "Seconds per point. Multiples of 3600 read the hourly rollups, multiples of 300 the "
                    "5-minute ones, anything else the raw samples (kept for the retention period only). "
                    "Default: chosen for about 800 points at most."
                ),
            ),
        ],
        responses={200: StatsSerializer, 400: OpenApiResponse(description="A bad window or step.")},
    )
    def get(self, request, public_id):
        connection = get_object_or_404(selectors.connection_list(org=request._request.org), public_id=public_id)
        until = _parse_when(request, "to", timezone.now())
        since = _parse_when(request, "from", until - timedelta(hours=24))
        step = request.query_params.get("step")
        if step not in (None, ""):
            try:
                step = int(step)
            except ValueError:
                raise ValidationError({"step": ["Give a whole number of seconds."]}) from None
            if step < 1:
                raise ValidationError({"step": ["Give a positive number of seconds."]})
        stats = telemetry.connection_stats(connection, since=since, until=until, step_seconds=step or None)
        return Response(stats_as_dict(connection, stats))
