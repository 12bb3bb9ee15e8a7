"""Telemetry ingest: the check of every sample, storing the valid ones and marking their buckets.

A call carries up to 10,000 samples and the target is 50,000 samples a second, so samples are
checked in one plain loop rather than DRF serializers, and on PostgreSQL each valid row goes into a
binary ``COPY`` as soon as it is checked: the database inserts while Python checks the rest. The
5-minute buckets that received samples are marked for the rollup (``fabric.telemetry.rollups``) in
the same transaction, in one statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import django.dispatch
from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from fabric.models import Connection, TelemetryDirtyBucket, TelemetrySample
from fabric.telemetry.reads import FIVE_MINUTES, _epoch, _from_epoch
from hub.errors import DomainError, PermissionDenied
from hub.models import Membership
from hub.roles import Action
from hub.services import require_action

#: Sent after the transaction that stored samples commits. Arguments: ``connection_ids``
#: (frozenset of Connection primary keys), ``organization_id``, ``time_from`` and ``time_to`` (the
#: earliest and latest sample time stored). Receivers must be quick: enqueue a task for real work.
samples_ingested = django.dispatch.Signal()

# ISO 3166-1 alpha-2, the officially assigned codes.
COUNTRY_CODES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV
    BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES
    ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE
    IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU
    NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM
    SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE
    VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 - a table is easier to check against the standard than 249 literals
)
COUNTERS = ("bytes_in", "bytes_out", "packets_in", "packets_out")
SAMPLE_FIELDS = frozenset({"time", "interval_seconds", *COUNTERS, "drops", "country"})
MAX_COUNTER = 2**63 - 1  # PostgreSQL bigint
MAX_INTERVAL_SECONDS = 86_400
DEFAULT_INTERVAL_SECONDS = 60
COPY_TYPES = ("int8", "timestamptz", "int4", "int8", "int8", "int8", "int8", "int8", "varchar")
COPY_COLUMNS = (
    "connection_id",
    "time",
    "interval_seconds",
    "bytes_in",
    "bytes_out",
    "packets_in",
    "packets_out",
    "drops",
    "country",
)


@dataclass
class IngestResult:
    """What an ingest stored: ``accepted`` samples, and per rejected sample its index and field errors."""

    accepted: int
    errors: list[dict]

    @property
    def rejected(self) -> int:
        return len(self.errors)


# Every spelling the fast path accepts, to the code stored ("de" -> "DE"; "" -> no country). Anything
# else (None, a non-ASCII spelling that str.upper() maps to a code) goes to the detailed check,
# which decides as before.
_COUNTRY_SPELLINGS = {"": ""} | {
    spelling: code
    for code in COUNTRY_CODES
    for spelling in (code, code.lower(), code[0] + code[1].lower(), code[0].lower() + code[1])
}
_MISSING = object()


def _parse_time(value, *, oldest: datetime, newest: datetime) -> tuple[datetime | None, str | None]:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None, "Not an ISO 8601 date-time."
        if parsed.tzinfo is None:
            return None, "Give a time zone (for example 2026-01-31T12:00:00Z)."
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            parsed = datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None, "Not a valid Unix time."
    elif value is None:
        return None, "This field is required."
    else:
        return None, "Give an ISO 8601 date-time or Unix seconds."
    if parsed > newest:
        return None, "This time is in the future."
    if parsed < oldest:
        days = settings.FABRIC_TELEMETRY_RETENTION_DAYS
        return None, f"This time is older than the {days}-day retention of raw samples."
    return parsed, None


def _parse_count(value, *, required: bool, low: int = 0, high: int = MAX_COUNTER) -> tuple[int | None, str | None]:
    if value is None:
        return (None, "This field is required.") if required else (None, None)
    if type(value) is not int:
        return None, "Must be a whole number."
    if value < low:
        return None, "Must not be negative." if low == 0 else f"Must be at least {low}."
    if value > high:
        return None, f"Must be at most {high}."
    return value, None


@dataclass
class _Checked:
    """What a check let through: how many rows, the (connection, 5-minute bucket start in Unix
    seconds) pairs they fall in and their earliest and latest time."""

    count: int
    buckets: set[tuple[int, int]]
    time_from: datetime | None
    time_to: datetime | None


def _check_samples(items: list, *, connection_for, write: Callable[[tuple], object]) -> tuple[_Checked, list[dict]]:
    """Check each sample; hand each valid one to ``write`` as a row (in ``COPY_COLUMNS`` order) and
    return what was written and the errors (``{"index": i, "fields": {name: [message]}}``) of the others.

    ``connection_for(item)`` answers ``(connection_id, error)`` for a sample and depends only on its
    ``connection`` value, so it is asked once per distinct value. A well-formed sample takes the
    fast path (type and range checks only, each distinct time string parsed once); anything else
    gets the detailed check that names every problem.
    """
    now = timezone.now()
    oldest = now - timedelta(days=settings.FABRIC_TELEMETRY_RETENTION_DAYS)
    newest = now + timedelta(seconds=settings.FABRIC_TELEMETRY_FUTURE_TOLERANCE_SECONDS)
    allowed = SAMPLE_FIELDS | {"connection"}
    countries = _COUNTRY_SPELLINGS
    answers: dict[object, tuple[int | None, str | None]] = {}
    times: dict[str, datetime] = {}
    marks: set[tuple[int, str]] = set()  # (connection, time string) of the rows of the fast path
    others: list[tuple[int, datetime]] = []  # (connection, time) of the rows of the detailed check
    errors: list[dict] = []
    for index, item in enumerate(items):
        if type(item) is dict and item.keys() <= allowed:
            reference = item.get("connection", _MISSING)
            if type(reference) is str or reference is _MISSING:
                answer = answers.get(reference)
                if answer is None:
                    answer = answers[reference] = connection_for(item)
            else:
                answer = connection_for(item)
            connection_id, problem = answer
            raw_time = item.get("time")
            bytes_in, bytes_out = item.get("bytes_in"), item.get("bytes_out")
            packets_in, packets_out = item.get("packets_in"), item.get("packets_out")
            drops, interval = item.get("drops", 0), item.get("interval_seconds", DEFAULT_INTERVAL_SECONDS)
            country = item.get("country", "")
            time = None
            if type(raw_time) is str:
                time = times.get(raw_time)
                if time is None:
                    time, time_problem = _parse_time(raw_time, oldest=oldest, newest=newest)
                    if time_problem is None:
                        times[raw_time] = time
            country = countries.get(country) if type(country) is str else None
            if (
                problem is None
                and time is not None
                and type(bytes_in) is int
                and type(bytes_out) is int
                and type(packets_in) is int
                and type(packets_out) is int
                and type(drops) is int
                and type(interval) is int
                and 0 <= bytes_in <= MAX_COUNTER
                and 0 <= bytes_out <= MAX_COUNTER
                and 0 <= packets_in <= MAX_COUNTER
                and 0 <= packets_out <= MAX_COUNTER
                and 0 <= drops <= MAX_COUNTER
                and 1 <= interval <= MAX_INTERVAL_SECONDS
                and country is not None
            ):
                write((connection_id, time, interval, bytes_in, bytes_out, packets_in, packets_out, drops, country))
                marks.add((connection_id, raw_time))
                continue
        row, fields = _check_sample(item, connection_for=connection_for, oldest=oldest, newest=newest)
        if fields:
            errors.append({"index": index, "fields": fields})
        else:
            write(row)
            others.append((row[0], row[1]))
    count = len(items) - len(errors)
    stamps = {raw: times[raw] for _, raw in marks}  # the distinct times: some hundreds at most
    starts = {raw: _epoch(time) // FIVE_MINUTES * FIVE_MINUTES for raw, time in stamps.items()}
    buckets = {(connection_id, starts[raw]) for connection_id, raw in marks}
    buckets.update((connection_id, _epoch(time) // FIVE_MINUTES * FIVE_MINUTES) for connection_id, time in others)
    moments = [*stamps.values(), *(time for _, time in others)]
    return _Checked(count, buckets, min(moments, default=None), max(moments, default=None)), errors


def _check_sample(item, *, connection_for, oldest: datetime, newest: datetime) -> tuple[tuple | None, dict]:
    """The detailed check of one sample: its row, or the messages of every field that is wrong."""
    if type(item) is not dict:
        return None, {"non_field_errors": ["A sample must be a JSON object."]}
    fields: dict[str, list[str]] = {}
    connection_id, problem = connection_for(item)
    if problem:
        fields["connection"] = [problem]
    for name in sorted(item.keys() - SAMPLE_FIELDS - {"connection"}):
        # The name is echoed in the report: a lone surrogate (valid JSON, not encodable) is escaped.
        fields[name.encode("utf-8", "backslashreplace").decode()] = ["Unknown field."]
    time, problem = _parse_time(item.get("time"), oldest=oldest, newest=newest)
    if problem:
        fields["time"] = [problem]
    values = []
    for name in COUNTERS:
        value, problem = _parse_count(item.get(name), required=True)
        if problem:
            fields[name] = [problem]
        values.append(value)
    drops, problem = _parse_count(item.get("drops"), required=False)
    if problem:
        fields["drops"] = [problem]
    interval, problem = _parse_count(item.get("interval_seconds"), required=False, low=1, high=MAX_INTERVAL_SECONDS)
    if problem:
        fields["interval_seconds"] = [problem]
    country = item.get("country")
    if country is None or country == "":  # absent, null or empty: the destination is not known
        country = ""
    elif not isinstance(country, str) or country.upper() not in COUNTRY_CODES:  # 0, false, [] too
        fields["country"] = ["Not an ISO 3166-1 alpha-2 country code."]
    else:
        country = country.upper()
    if fields:
        return None, fields
    return (connection_id, time, interval or DEFAULT_INTERVAL_SECONDS, *values, drops or 0, country), {}


@contextmanager
def _sample_writer() -> Iterator[Callable[[tuple], object]]:
    """A function that stores one row (``COPY_COLUMNS`` order). On PostgreSQL the rows stream into a
    binary COPY, which the database works through while the caller goes on; elsewhere they are
    inserted in batches when the block ends."""
    if db_connection.vendor == "postgresql":
        columns = ", ".join(COPY_COLUMNS)
        sql = f"COPY {TelemetrySample._meta.db_table} ({columns}) FROM STDIN (FORMAT BINARY)"
        with db_connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            copy.set_types(COPY_TYPES)
            yield copy.write_row
    else:
        rows: list[tuple] = []
        yield rows.append
        TelemetrySample.objects.bulk_create(
            [TelemetrySample(**dict(zip(COPY_COLUMNS, row, strict=True))) for row in rows], batch_size=2000
        )


# One statement for all the markers of an ingest (PostgreSQL): two arrays, unnested in their order.
_MARK_SQL = (
    f"INSERT INTO {TelemetryDirtyBucket._meta.db_table} (connection_id, bucket, marked_at) "  # noqa: S608 - a constant
    "SELECT connection_id, to_timestamp(bucket), %s "
    "FROM unnest(%s::bigint[], %s::bigint[]) AS marker(connection_id, bucket) "
    "ON CONFLICT (connection_id, bucket) DO UPDATE SET marked_at = EXCLUDED.marked_at"
)


def _mark_dirty(buckets: Iterable[tuple[int, int]]) -> None:
    """Mark (connection, bucket start in Unix seconds) for the rollup, or renew their ``marked_at``."""
    marked_at = timezone.now()
    # Sorted, so concurrent ingests lock the markers in the same order and never deadlock.
    ordered = sorted(buckets)
    if db_connection.vendor == "postgresql":
        with db_connection.cursor() as cursor:
            cursor.execute(
                _MARK_SQL,
                [marked_at, [connection_id for connection_id, _ in ordered], [start for _, start in ordered]],
            )
        return
    TelemetryDirtyBucket.objects.bulk_create(
        [
            TelemetryDirtyBucket(connection_id=connection_id, bucket=_from_epoch(start), marked_at=marked_at)
            for connection_id, start in ordered
        ],
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["connection", "bucket"],
        update_fields=["marked_at"],
    )


def _stored(checked: _Checked, *, organization_id: int | None) -> None:
    """Mark the buckets of the rows just written and announce them once the transaction commits."""
    if not checked.count:
        return
    _mark_dirty(checked.buckets)
    connection_ids = frozenset(connection_id for connection_id, _ in checked.buckets)
    time_from, time_to = checked.time_from, checked.time_to
    transaction.on_commit(
        lambda: samples_ingested.send(
            sender=TelemetrySample,
            connection_ids=connection_ids,
            organization_id=organization_id,
            time_from=time_from,
            time_to=time_to,
        )
    )


def store_samples(rows: list[tuple], *, organization_id: int | None) -> None:
    """Store validated rows (``COPY_COLUMNS`` order) and mark their buckets for the rollup,
    atomically; announce them on commit."""
    if not rows:
        return
    with transaction.atomic():
        with _sample_writer() as write:
            for row in rows:
                write(row)
        times = [row[1] for row in rows]
        buckets = {(row[0], _epoch(row[1]) // FIVE_MINUTES * FIVE_MINUTES) for row in rows}
        _stored(_Checked(len(rows), buckets, min(times), max(times)), organization_id=organization_id)


def _ingest(samples: list, *, connection_for, organization_id: int) -> IngestResult:
    """Check and store in one transaction: valid rows are written while the rest is checked."""
    with transaction.atomic():
        with _sample_writer() as write:
            checked, errors = _check_samples(samples, connection_for=connection_for, write=write)
        _stored(checked, organization_id=organization_id)
    return IngestResult(accepted=checked.count, errors=errors)


def _check_batch(samples) -> None:
    if not isinstance(samples, list):
        raise DomainError("Send the samples as a JSON list under 'samples'.", field="samples")
    if not samples:
        raise DomainError("Send at least one sample.", field="samples")
    limit = settings.FABRIC_TELEMETRY_MAX_SAMPLES
    if len(samples) > limit:
        raise DomainError(
            f"At most {limit:,} samples per call; this one has {len(samples):,}. Split it.",
            code="too_many_samples",
            field="samples",
        )


def telemetry_ingest(*, membership: Membership, connection: Connection, samples) -> IngestResult:
    """Store the valid samples of one connection of the member's organization; report the others.

    Telemetry is reported by the organization that ordered the connection (the A side).
    """
    require_action(membership, Action.FABRIC_MANAGE)
    if connection.organization_id != membership.organization_id:
        raise PermissionDenied("Only the organization that ordered a connection reports its telemetry.")
    _check_batch(samples)

    def connection_for(item):
        if "connection" in item and str(item["connection"]) != str(connection.public_id):
            return None, "Does not match the connection in the URL."
        return connection.pk, None

    return _ingest(samples, connection_for=connection_for, organization_id=membership.organization_id)


def telemetry_ingest_bulk(*, membership: Membership, samples) -> IngestResult:
    """Store the valid samples of many connections at once; each sample names its ``connection``
    (public id). Samples naming a connection the organization did not order are rejected."""
    require_action(membership, Action.FABRIC_MANAGE)
    _check_batch(samples)
    references = {
        reference for item in samples if type(item) is dict and type(reference := item.get("connection")) is str
    }
    wanted = set()
    for reference in references:
        try:
            wanted.add(uuid.UUID(reference))
        except ValueError:
            continue
    known = {
        str(public_id): pk
        for public_id, pk in Connection.objects.filter(
            organization_id=membership.organization_id, public_id__in=wanted
        ).values_list("public_id", "pk")
    }

    answers: dict[str, tuple[int | None, str | None]] = {}

    def resolve(reference) -> tuple[int | None, str | None]:
        if reference is None:
            return None, "This field is required."
        if not isinstance(reference, str):
            return None, "Give the connection's id (a UUID)."
        try:
            pk = known.get(str(uuid.UUID(reference)))
        except ValueError:
            return None, "Not a valid UUID."
        if pk is None:
            return None, "No connection of your organization has this id."
        return pk, None

    def connection_for(item):
        reference = item.get("connection")
        if type(reference) is not str:
            return resolve(reference)
        answer = answers.get(reference)
        if answer is None:
            answer = answers[reference] = resolve(reference)
        return answer

    return _ingest(samples, connection_for=connection_for, organization_id=membership.organization_id)
