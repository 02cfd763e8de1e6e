"""Model rows written in plain SQL: the INSERTs and UPDATEs every zone change runs.

Django's ORM spent several times the CPU of running a simple INSERT or UPDATE on building it
(Model.save, QuerySet.create, bulk_create: 0.5-1 ms each, four or five per API write; py-spy and
cProfile on bench/api_writes.py). These build the same statements from each model's column list. They
do what Model.save does for the models they are used on (Zone, RecordSet, ZoneChange, OutboxEvent):
each field's pre_save (auto_now, auto_now_add) and database value, and the shard (fill_shard); those
models have no save signals to miss.
"""
import functools

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.utils import timezone


def insert_sql(objs: list[Model], wrap: dict[str, str] | None = None) -> tuple[str, list]:
    """One INSERT of these new rows of one model, and its parameters. A model that numbers its rows
    (an AutoField) gets `RETURNING id` (see insert); the others' ids are set on the instances already.
    wrap: SQL around a field's placeholder, by field name (e.g. {"payload": "%s::jsonb || ..."})."""
    wrap = wrap or {}
    connection = connections[DEFAULT_DB_ALIAS]  # not django.db.connection's proxy: fields ask it a lot
    meta = objs[0]._meta
    auto = meta.auto_field
    fields = [f for f in meta.concrete_fields if f is not auto]
    params = []
    for obj in objs:
        if hasattr(obj, "fill_shard"):
            obj.fill_shard()
        params += [_prepared(f, f.pre_save(obj, True), connection) for f in fields]
    row = f"({', '.join(wrap.get(f.name, '%s') for f in fields)})"
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) VALUES "
           + ", ".join([row] * len(objs)))
    return sql + (f" RETURNING {quote(auto.column)}" if auto else ""), params


# Fields whose database value is the value itself when it is exactly of this type (or None): their
# get_db_prep_save only checks that, and is most of the calls of an INSERT (a few microseconds each).
_PLAIN = {"CharField": str, "TextField": str, "BooleanField": bool, **{
    kind: int for kind in ("IntegerField", "BigIntegerField", "SmallIntegerField", "PositiveIntegerField",
                           "PositiveBigIntegerField", "PositiveSmallIntegerField")}}


def _prepared(field, value, connection):
    """field.get_db_prep_save(value, connection), without the call for a plain value of a plain field."""
    plain = _PLAIN.get(field.get_internal_type())
    if plain is not None and (value is None or type(value) is plain):
        return value
    return field.get_db_prep_save(value, connection)


def insert(*objs: Model):
    """Model.save(force_insert=True) of each (bulk_create of several) in one statement; an AutoField's
    numbers are set on the instances. Raises IntegrityError as save() does."""
    sql, params = insert_sql(list(objs))
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        auto = objs[0]._meta.auto_field
        if auto:
            for obj, (pk,) in zip(objs, cursor.fetchall()):
                setattr(obj, auto.attname, pk)
    saved(*objs)


def saved(*objs: Model):
    """What Model.save leaves on a new instance: it is in the database now."""
    for obj in objs:
        obj._state.adding, obj._state.db = False, DEFAULT_DB_ALIAS


_UPDATES: dict = {}  # (model, names) -> (the UPDATE, its fields)


def update(obj: Model, names: list[str]):
    """obj.save(update_fields=names) with updated_at set now, as one UPDATE."""
    obj.updated_at = timezone.now()
    connection = connections[DEFAULT_DB_ALIAS]
    meta = obj._meta
    key = (type(obj), tuple(names))
    if key not in _UPDATES:
        fields = [meta.get_field(name) for name in names]
        _UPDATES[key] = (f"UPDATE {meta.db_table} SET {', '.join(f'{f.column} = %s' for f in fields)} WHERE id = %s",
                         fields)
    sql, fields = _UPDATES[key]
    with connection.cursor() as cursor:
        cursor.execute(sql, [_prepared(f, getattr(obj, f.attname), connection) for f in fields]
                       + [meta.pk.get_db_prep_value(obj.pk, connection)])


def update_each(model: type[Model], name: str, values: dict, **same):
    """One UPDATE of many rows: `name` set to values[pk] on each (a CASE on the id), and each field in `same`
    to its one value. bulk_update's CASE, built through the ORM, cost more CPU than the rest of its caller."""
    if not values:
        return
    connection = connections[DEFAULT_DB_ALIAS]
    quote, meta = connection.ops.quote_name, model._meta
    field, pk = meta.get_field(name), meta.pk
    ids = [pk.get_db_prep_value(key, connection) for key in values]
    sets = [f"{quote(field.column)} = CASE {quote(pk.column)} {' '.join(['WHEN %s THEN %s'] * len(ids))} END"]
    params = [v for key, value in zip(ids, values.values()) for v in (key, _prepared(field, value, connection))]
    for other, value in same.items():
        other = meta.get_field(other)
        sets.append(f"{quote(other.column)} = %s")
        params.append(_prepared(other, value, connection))
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {quote(meta.db_table)} SET {', '.join(sets)} "
                       f"WHERE {quote(pk.column)} IN ({', '.join(['%s'] * len(ids))})", params + ids)


@functools.cache
def columns(model: type[Model]) -> str:
    """The model's columns, in its fields' order: the start of a SELECT whose rows `loaded` reads."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    table = quote(model._meta.db_table)
    return ", ".join(f"{table}.{quote(f.column)}" for f in model._meta.concrete_fields)


_CONVERTERS: dict = {}  # (model, vendor) -> [(index, the column, its converters)]


def loaded(model: type[Model], rows) -> list[Model]:
    """Instances of model from rows that start with columns(model) (what follows is left to the caller),
    each value converted as a queryset converts it (JSON arrives as text, SQLite's dates as text)."""
    connection = connections[DEFAULT_DB_ALIAS]
    key = (model, connection.vendor)
    converters = _CONVERTERS.get(key)
    if converters is None:
        converters = _CONVERTERS[key] = []
        for i, field in enumerate(model._meta.concrete_fields):
            col = field.get_col(model._meta.db_table)
            found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if found:
                converters.append((i, col, found))
    names = [f.attname for f in model._meta.concrete_fields]
    objs = []
    for row in rows:
        values = list(row[:len(names)])
        for i, col, found in converters:
            for convert in found:
                values[i] = convert(values[i], col, connection)
        objs.append(model.from_db(DEFAULT_DB_ALIAS, names, values))
    return objs
