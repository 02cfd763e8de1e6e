"""Model rows written in plain SQL: the INSERTs and UPDATEs every zone change runs.

Django's ORM spent several times the CPU of running a simple INSERT or UPDATE on building it
(Model.save, QuerySet.create, bulk_create: 0.5-1 ms each, four or five per API write; py-spy and
cProfile on bench/api_writes.py). These build the same statements from each model's column list. They
do what Model.save does for the models they are used on (Zone, RecordSet, ZoneChange, OutboxEvent):
each field's pre_save (auto_now, auto_now_add) and database value, and the shard (fill_shard); those
models have no save signals to miss.
"""
from django.db import connection
from django.db.models import Model
from django.utils import timezone


def insert_sql(objs: list[Model], wrap: dict[str, str] | None = None) -> tuple[str, list]:
    """One INSERT of these new rows of one model, and its parameters. A model that numbers its rows
    (an AutoField) gets `RETURNING id` (see insert); the others' ids are set on the instances already.
    wrap: SQL around a field's placeholder, by field name (e.g. {"payload": "%s::jsonb || ..."})."""
    wrap = wrap or {}
    meta = objs[0]._meta
    auto = meta.auto_field
    fields = [f for f in meta.concrete_fields if f is not auto]
    params = []
    for obj in objs:
        if hasattr(obj, "fill_shard"):
            obj.fill_shard()
        params += [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    row = f"({', '.join(wrap.get(f.name, '%s') for f in fields)})"
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) VALUES "
           + ", ".join([row] * len(objs)))
    return sql + (f" RETURNING {quote(auto.column)}" if auto else ""), params


def insert(*objs: Model):
    """Model.save(force_insert=True) of each (bulk_create of several) in one statement; an AutoField's
    numbers are set on the instances. Raises IntegrityError as save() does."""
    sql, params = insert_sql(list(objs))
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
        obj._state.adding, obj._state.db = False, connection.alias


def update(obj: Model, names: list[str]):
    """obj.save(update_fields=names) with updated_at set now, as one UPDATE."""
    obj.updated_at = timezone.now()
    meta = obj._meta
    fields = [meta.get_field(name) for name in names]
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {meta.db_table} SET {', '.join(f'{f.column} = %s' for f in fields)} WHERE id = %s",
                       [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]
                       + [meta.pk.get_db_prep_value(obj.pk, connection)])
