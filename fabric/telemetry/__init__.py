"""Connection telemetry: the reads other code builds on (``reads``), ingest (``ingest``), rollups
and retention (``rollups``).

The public interface (used by topology, the dashboard and security) is ``utilisation_by_connection``,
``series``, ``countries_seen`` and the ``samples_ingested`` signal; everything reads the rollups
where it can, so it stays fast however many raw samples there are.

Raw samples are deltas for ``interval_seconds`` ending at ``time``. A sample counts in the bucket its
``time`` falls in. Rates are bits per second: ``bytes * 8 / seconds``.
"""

from fabric.telemetry.ingest import (
    COPY_COLUMNS,
    COPY_TYPES,
    COUNTERS,
    COUNTRY_CODES,
    DEFAULT_INTERVAL_SECONDS,
    MAX_COUNTER,
    MAX_INTERVAL_SECONDS,
    SAMPLE_FIELDS,
    IngestResult,
    samples_ingested,
    store_samples,
    telemetry_ingest,
    telemetry_ingest_bulk,
)
from fabric.telemetry.reads import (
    FIVE_MINUTES,
    HOUR,
    STEP_LADDER,
    TARGET_POINTS,
    BucketStart,
    Point,
    Stats,
    Utilisation,
    connection_stats,
    countries_seen,
    default_step,
    floor_time,
    percentile,
    port_series,
    port_stats,
    series,
    series_source,
    utilisation_by_connection,
)
from fabric.telemetry.rollups import retention_cutoffs, retention_enforce, rollup_pending

__all__ = [
    "COPY_COLUMNS",
    "COPY_TYPES",
    "COUNTERS",
    "COUNTRY_CODES",
    "DEFAULT_INTERVAL_SECONDS",
    "FIVE_MINUTES",
    "HOUR",
    "MAX_COUNTER",
    "MAX_INTERVAL_SECONDS",
    "SAMPLE_FIELDS",
    "STEP_LADDER",
    "TARGET_POINTS",
    "BucketStart",
    "IngestResult",
    "Point",
    "Stats",
    "Utilisation",
    "connection_stats",
    "countries_seen",
    "default_step",
    "floor_time",
    "percentile",
    "port_series",
    "port_stats",
    "retention_cutoffs",
    "retention_enforce",
    "rollup_pending",
    "samples_ingested",
    "series",
    "series_source",
    "store_samples",
    "telemetry_ingest",
    "telemetry_ingest_bulk",
    "utilisation_by_connection",
]
