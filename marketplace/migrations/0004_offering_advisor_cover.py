"""A covering index for the placement advisor's judging statement (``marketplace.advisor._judged_sql``).

The advisor reads every published offering of one category: without this index a sequential scan of the
whole offering table (140 MB at 100,000 offerings, descriptions and search documents included, read
through a small ring buffer, so never cached in shared buffers), with it an index-only scan of about a
third of a 10 MB index: the key is (category, status) and the columns the statement reads ride along.

PostgreSQL only (SQLite has no INCLUDE and its catalogs are small), so it is SQL rather than a model
``Index``: Django would warn (models.W040) on SQLite for an ``Index(include=...)`` in the model.
"""

from django.db import migrations

INDEX = "offering_advisor_cover"
CREATE = f"""
CREATE INDEX IF NOT EXISTS {INDEX} ON marketplace_offering (category, status)
INCLUDE (id, name, currency, accelerator, gpu_count, price_amount, price_unit)
"""


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("marketplace", "0003_catalog_version"),
    ]

    operations = [
        migrations.RunPython(create_index, drop_index),
    ]
