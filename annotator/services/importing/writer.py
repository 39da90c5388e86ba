"""The bulk writer: rows of a model to the database by COPY (PostgreSQL) or one INSERT."""

import json

from django.db import connection, models
from django.utils import timezone


class BulkWriter:
    """Rows of a model (items, import issues) to the database: `prepare` (CPU, outside any
    transaction) turns field values into database values, `write` (inside the batch's short
    transaction) only sends them.

    PostgreSQL: COPY (about twice as fast as INSERT for big files). Others: one executemany
    INSERT; on SQLite, Django's bulk_create splits a batch into INSERTs of ~45 rows and
    builds each in Python, all while holding the only write lock labelers need too.
    Fields a row does not name get the model's defaults, so new fields with a default need
    no change here.
    """

    def __init__(self, model: type[models.Model]) -> None:
        self.fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        self.json_fields = {f.attname for f in self.fields if isinstance(f, models.JSONField)}
        self.copy = connection.vendor == "postgresql"
        table = connection.ops.quote_name(model._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(f.column) for f in self.fields)
        if self.copy:
            self.sql = f"COPY {table} ({columns}) FROM STDIN"
        else:
            marks = ", ".join(["%s"] * len(self.fields))
            self.sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"

    def prepare(self, rows: list[dict]) -> list[list]:
        now = timezone.now()
        defaults = []
        for field in self.fields:
            auto = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
            defaults.append((field, now if auto else field.get_default()))
        prepared = []
        for values in rows:
            row = []
            for field, default in defaults:
                value = values.get(field.attname, default)
                if self.copy:
                    if field.attname in self.json_fields and value is not None:
                        value = json.dumps(value, ensure_ascii=False)
                else:
                    value = field.get_db_prep_save(value, connection)
                row.append(value)
            prepared.append(row)
        return prepared

    def write(self, prepared: list[list]) -> None:
        if not prepared:
            return
        # wrap_database_errors: psycopg's errors from the raw COPY become Django's
        # (IntegrityError)
        if not self.copy:
            with connection.cursor() as cursor:
                cursor.executemany(self.sql, prepared)
            return
        with (
            connection.wrap_database_errors,
            connection.cursor() as cursor,
            cursor.cursor.copy(self.sql) as copy,
        ):
            for row in prepared:
                copy.write_row(row)
