"""The catalog version: one row that triggers change with every write to the catalog tables.

Search keeps a columnar copy of the catalog's facet dimensions in each process
(``marketplace.catalog_index``) and rebuilds it when this version differs from the one it was built at.
Triggers rather than Python signals, so that no way of writing (``bulk_create``, ``QuerySet.update()``,
raw SQL, another app) can leave a process with a stale copy. The new value is never one used before:
a sequence on PostgreSQL (not rolled back with the transaction, so a rolled-back write cannot bring an
old value back), a random 64-bit number on SQLite.

PostgreSQL: one statement-level trigger per table (INSERT, UPDATE, DELETE, TRUNCATE), so a bulk write
bumps the version once per statement. SQLite has no statement-level triggers: one row-level trigger per
table and event. The version row is locked until the writing transaction ends, so catalog writes from
concurrent transactions take turns on it (they are rare: providers editing listings).

On PostgreSQL also a covering index for the rebuild's read (``catalog_index._OFFERINGS_SQL``): every
offering's facet columns in name order, as an index-only scan of about 20 MB instead of a sequential
scan and a sort of the 140 MB table (descriptions and search documents included) at 100,000 offerings.
"""

from django.db import migrations, models

# The metros too: search reads them (names, regions, coordinates) with the index.
TABLES = ("marketplace_offering", "marketplace_accesspoint", "marketplace_providerprofile", "fabric_metro")

POSTGRES_SEQUENCE = "CREATE SEQUENCE IF NOT EXISTS marketplace_catalog_version_seq"
POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION marketplace_catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO marketplace_catalogversion (id, value) VALUES (1, nextval('marketplace_catalog_version_seq'))
    ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value;
    RETURN NULL;
END
$$;
"""
POSTGRES_TRIGGER = """
CREATE TRIGGER {table}_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION marketplace_catalog_changed()
"""
# An UPDATE and an INSERT-if-missing rather than INSERT OR REPLACE: SQLite lets the writing statement's
# conflict clause (INSERT OR IGNORE, as bulk_create(ignore_conflicts=True) writes) override a trigger's.
SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS {table}_catalog_changed_{event} AFTER {event} ON {table} FOR EACH ROW BEGIN
    UPDATE marketplace_catalogversion SET value = random() WHERE id = 1;
    INSERT INTO marketplace_catalogversion (id, value)
        SELECT 1, random() WHERE NOT EXISTS (SELECT 1 FROM marketplace_catalogversion WHERE id = 1);
END
"""
EVENTS = ("INSERT", "UPDATE", "DELETE")
FACETS_INDEX = """
CREATE INDEX IF NOT EXISTS offering_facets_cover ON marketplace_offering (name, id)
INCLUDE (status, organization_id, category, provider_id, regions, accelerator, gpu_count, gpu_memory_gb,
         compliance, price_amount, price_unit)
"""


def install_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_SEQUENCE)
        schema_editor.execute(POSTGRES_FUNCTION)
        for table in TABLES:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_catalog_changed ON {table}")
            schema_editor.execute(POSTGRES_TRIGGER.format(table=table))
        schema_editor.execute(
            "INSERT INTO marketplace_catalogversion (id, value) VALUES (1, nextval('marketplace_catalog_version_seq'))"
        )
        schema_editor.execute(FACETS_INDEX)
    elif vendor == "sqlite":
        for table in TABLES:
            for event in EVENTS:
                schema_editor.execute(SQLITE_TRIGGER.format(table=table, event=event))
        schema_editor.execute("INSERT INTO marketplace_catalogversion (id, value) VALUES (1, random())")
    else:  # pragma: no cover - the project runs on PostgreSQL and SQLite only
        raise RuntimeError(f"No catalog version triggers for {vendor}.")


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_catalog_changed ON {table}")
        schema_editor.execute("DROP FUNCTION IF EXISTS marketplace_catalog_changed()")
        schema_editor.execute("DROP SEQUENCE IF EXISTS marketplace_catalog_version_seq")
        schema_editor.execute("DROP INDEX IF EXISTS offering_facets_cover")
    elif vendor == "sqlite":
        for table in TABLES:
            for event in EVENTS:
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_catalog_changed_{event}")


class Migration(migrations.Migration):
    dependencies = [
        ("marketplace", "0002_offering_search"),
    ]

    operations = [
        migrations.CreateModel(
            name="CatalogVersion",
            fields=[
                ("id", models.PositiveSmallIntegerField(primary_key=True, serialize=False)),
                ("value", models.BigIntegerField()),
            ],
        ),
        migrations.RunPython(install_triggers, drop_triggers),
    ]
