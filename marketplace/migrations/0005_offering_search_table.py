"""A narrow copy of the offerings' search documents for the catalog's text match (PostgreSQL only).

Search asks PostgreSQL for the offerings matching a text, with their rank (``marketplace.search._matches``).
The GIN index finds them, but PostgreSQL then visits each matching row's page to read its document (to
rank it) and its visibility: in the offering table that is a row of about 1.4 KB among descriptions,
attributes and JSON (140 MB at 100,000 offerings, more than the default shared buffers), so a broad word
("storage": 15,000 offerings) visits 8,700 pages. Here each row is the offering's id and its document
only (38 MB): the same word visits 4,700 pages that stay cached.

Triggers keep the copy equal to ``marketplace_offering.search_vector`` whatever writes it (the services'
``refresh_search_documents``, ``bulk_create``, the admin, raw SQL): statement-level, with the statement's
rows as a transition table, so a bulk write costs one statement more, not one per row. Visibility is not
copied: search takes it (published, or the asking organization's own) from the catalog index.
"""

from django.db import migrations

TABLE = "marketplace_offering_search"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (offering_id bigint PRIMARY KEY, search_vector tsvector NOT NULL);
CREATE INDEX IF NOT EXISTS {TABLE}_gin ON {TABLE} USING gin (search_vector);
"""
# The rows a statement wrote are matched to the copy through arrays of ids (an index probe each, or
# one hashed pass), never by joining the transition table: after a flush or a bulk load the planner
# has no statistics for the copy and may pick a nested loop that reads it once per written row,
# which made loading 100,000 offerings in batches of 5,000 take tens of minutes.
FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION {TABLE}_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (offering_id, search_vector)
        SELECT id, search_vector FROM written WHERE search_vector IS NOT NULL
    ON CONFLICT (offering_id) DO UPDATE SET search_vector = EXCLUDED.search_vector;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION {TABLE}_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    emptied bigint[] := ARRAY(SELECT id FROM written WHERE search_vector IS NULL);
BEGIN
    IF cardinality(emptied) > 0 THEN
        DELETE FROM {TABLE} WHERE offering_id = ANY (emptied);
    END IF;
    INSERT INTO {TABLE} (offering_id, search_vector)
        SELECT id, search_vector FROM written WHERE search_vector IS NOT NULL
    ON CONFLICT (offering_id) DO UPDATE SET search_vector = EXCLUDED.search_vector
        WHERE {TABLE}.search_vector IS DISTINCT FROM EXCLUDED.search_vector;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION {TABLE}_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gone bigint[] := ARRAY(SELECT id FROM deleted);
BEGIN
    DELETE FROM {TABLE} WHERE offering_id = ANY (gone);
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION {TABLE}_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE {TABLE};
    RETURN NULL;
END
$$;
"""
TRIGGERS = f"""
CREATE TRIGGER offering_search_inserted AFTER INSERT ON marketplace_offering
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_inserted();
CREATE TRIGGER offering_search_updated AFTER UPDATE ON marketplace_offering
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_updated();
CREATE TRIGGER offering_search_deleted AFTER DELETE ON marketplace_offering
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_deleted();
CREATE TRIGGER offering_search_truncated AFTER TRUNCATE ON marketplace_offering
    FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_truncated();
"""
BACKFILL = f"""
INSERT INTO {TABLE} (offering_id, search_vector)
    SELECT id, search_vector FROM marketplace_offering WHERE search_vector IS NOT NULL
ON CONFLICT (offering_id) DO NOTHING
"""
TRIGGER_NAMES = ("inserted", "updated", "deleted", "truncated")


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE_TABLE)
    schema_editor.execute(FUNCTIONS)
    for name in TRIGGER_NAMES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS offering_search_{name} ON marketplace_offering")
    schema_editor.execute(TRIGGERS)
    schema_editor.execute(BACKFILL)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in TRIGGER_NAMES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS offering_search_{name} ON marketplace_offering")
    for name in ("inserted", "updated", "deleted", "truncated"):
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {TABLE}_{name}()")
    schema_editor.execute(f"DROP TABLE IF EXISTS {TABLE}")


class Migration(migrations.Migration):
    dependencies = [
        ("marketplace", "0004_offering_advisor_cover"),
    ]

    operations = [migrations.RunPython(create, drop)]
