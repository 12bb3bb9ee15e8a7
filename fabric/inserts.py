"""Several INSERTs in one statement on PostgreSQL (data-modifying ``WITH``), for the hot write paths.

A connection request writes rows of several tables in one transaction; each statement is a round
trip, so rows that go together are sent together: a workflow with its steps, a connection's
timeline with its audit entries. Values are prepared by the models' own fields (defaults,
``auto_now``, JSON, UUIDs), so the rows are what ``save``/``bulk_create`` would write; no model
signals are sent (``bulk_create`` sends none either). Other databases get the ORM's statements.
"""

from functools import cache

from django.db import connection as connection_db
from django.db.models import Model

__all__ = ["insert_together", "insert_with_children"]


def _supported() -> bool:
    return connection_db.vendor == "postgresql"


def _fields(model, exclude=()):
    return [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in exclude]


def _row_sql(fields) -> str:
    # Each value is cast to its column's type: with client-side binding a NULL or a string literal
    # in a VALUES list would otherwise be typed as text.
    return "(" + ", ".join(f"%s::{f.cast_db_type(connection_db)}" for f in fields) + ")"


def _columns_sql(fields) -> str:
    return ", ".join(connection_db.ops.quote_name(f.column) for f in fields)


def _values(obj: Model, fields) -> list:
    return [f.get_db_prep_save(f.pre_save(obj, add=True), connection_db) for f in fields]


def _saved(obj: Model, pk) -> None:
    obj.pk = pk
    obj._state.adding, obj._state.db = False, connection_db.alias


def insert_together(groups: list[list[Model]]) -> None:
    """Insert the unsaved instances of each group (one model per group), all in one statement on
    PostgreSQL; each instance gets its primary key as with ``bulk_create``."""
    groups = [group for group in groups if group]
    if not groups:
        return
    if not _supported():
        for group in groups:
            type(group[0]).objects.bulk_create(group)
        return
    sql = _together_sql(tuple((type(group[0]), len(group)) for group in groups))
    params = [value for group in groups for obj in group for value in _values(obj, _fields(type(obj)))]
    with connection_db.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # RETURNING lists each INSERT's rows in the order of its VALUES (bulk_create relies on it too).
    ids: dict[int, list] = {}
    for index, pk in rows:
        ids.setdefault(index, []).append(pk)
    for index, group in enumerate(groups):
        for obj, pk in zip(group, ids[index], strict=True):
            _saved(obj, pk)


@cache
def _together_sql(shape: tuple[tuple[type, int], ...]) -> str:
    quote = connection_db.ops.quote_name
    parts = []
    for index, (model, count) in enumerate(shape):
        fields = _fields(model)
        table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
        columns, values = _columns_sql(fields), ", ".join([_row_sql(fields)] * count)
        insert = f"INSERT INTO {table} ({columns}) VALUES {values} RETURNING {pk}"  # noqa: S608 - model names
        parts.append(f"insert_{index} AS ({insert})")
    selects = " UNION ALL ".join(
        f"SELECT {index}, {quote(model._meta.pk.column)} FROM insert_{index}"  # noqa: S608 - model names
        for index, (model, _) in enumerate(shape)
    )
    return f"WITH {', '.join(parts)} {selects}"


def insert_with_children(parent: Model, children: list[Model], *, fk: str) -> None:
    """Insert ``parent`` and its unsaved ``children`` (whose ``fk`` points at it) in one statement
    on PostgreSQL, where the ORM needs two (the children wait for the parent's id)."""
    if not _supported() or not children:
        parent.save()
        if children:
            type(children[0]).objects.bulk_create(children)
        return
    child_model = type(children[0])
    sql = _with_children_sql(type(parent), child_model, fk, len(children))
    params = _values(parent, _fields(type(parent)))
    params += [value for child in children for value in _values(child, _fields(child_model, exclude=(fk,)))]
    with connection_db.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    _saved(parent, rows[0][0])
    for child, (parent_pk, pk) in zip(children, rows, strict=True):
        setattr(child, child_model._meta.get_field(fk).attname, parent_pk)
        _saved(child, pk)


@cache
def _with_children_sql(parent_model, child_model, fk: str, count: int) -> str:
    quote = connection_db.ops.quote_name
    parent_fields, child_fields = _fields(parent_model), _fields(child_model, exclude=(fk,))
    fk_column = quote(child_model._meta.get_field(fk).column)
    return f"""
        WITH parent AS (
            INSERT INTO {quote(parent_model._meta.db_table)} ({_columns_sql(parent_fields)})
            VALUES {_row_sql(parent_fields)} RETURNING {quote(parent_model._meta.pk.column)} AS id
        )
        INSERT INTO {quote(child_model._meta.db_table)} ({fk_column}, {_columns_sql(child_fields)})
        SELECT parent.id, child.* FROM parent CROSS JOIN (VALUES {", ".join([_row_sql(child_fields)] * count)}) AS child
        RETURNING {fk_column}, {quote(child_model._meta.pk.column)}
    """  # noqa: S608 - names come from the models, every value is a parameter
