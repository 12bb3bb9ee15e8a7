"""Writes of the fabric app."""

import csv
from pathlib import Path

from django.db import transaction

from fabric.choices import Region
from fabric.models import Metro

METROS_CSV = Path(__file__).resolve().parent / "data" / "metros.csv"


@transaction.atomic
def metros_load(*, path: Path = METROS_CSV) -> tuple[int, int]:
    """Create or update metros from a CSV (``code,name,country_iso2,region,sovereignty_zone,lat,lon``).

    Idempotent: returns (created, updated). Rows are validated before anything is written.
    """
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    parsed = []
    for line, row in enumerate(rows, start=2):
        try:
            metro = Metro(
                code=row["code"].strip().upper(),
                name=row["name"].strip(),
                country=row["country_iso2"].strip().upper(),
                region=row["region"].strip().upper(),
                sovereignty_zone=row["sovereignty_zone"].strip().upper(),
                latitude=float(row["lat"]),
                longitude=float(row["lon"]),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{path.name} line {line}: {exc}") from exc
        if metro.region not in Region.values:
            raise ValueError(f"{path.name} line {line}: unknown region {metro.region!r}")
        parsed.append(metro)
    created = updated = 0
    fields = ["name", "country", "region", "sovereignty_zone", "latitude", "longitude"]
    for metro in parsed:
        _, was_created = Metro.objects.update_or_create(
            code=metro.code, defaults={field: getattr(metro, field) for field in fields}
        )
        created += was_created
        updated += not was_created
    return created, updated
