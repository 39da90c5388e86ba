"""Text search on Item.text, indexed on each database (selectors/search.py, docs/search.md).

PostgreSQL: the pg_trgm extension and a GIN trigram index on annotator_item.text, which
answers `text ILIKE '%…%'` for patterns of three characters or more, in any script.
SQLite: an FTS5 table with the trigram tokenizer over annotator_item.text (external content:
the text is stored once, in annotator_item), kept in step by three triggers and filled
with the existing rows here. Staged import rows are indexed too; every search reads items
through Item.objects, which leaves them out.

On SQLite, a later migration that remakes annotator_item (Django copies the table to change
some columns) drops the triggers with the old table: tests/annotator/test_search.py checks
that they exist after every migration.
"""

from django.db import migrations

SQLITE_CREATE = [
    "CREATE VIRTUAL TABLE annotator_item_fts USING fts5("
    "text, content='annotator_item', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER annotator_item_fts_insert AFTER INSERT ON annotator_item BEGIN "
    "INSERT INTO annotator_item_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER annotator_item_fts_delete AFTER DELETE ON annotator_item BEGIN "
    "INSERT INTO annotator_item_fts(annotator_item_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER annotator_item_fts_update AFTER UPDATE OF text ON annotator_item BEGIN "
    "INSERT INTO annotator_item_fts(annotator_item_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); "
    "INSERT INTO annotator_item_fts(rowid, text) VALUES (new.id, new.text); END",
    "INSERT INTO annotator_item_fts(annotator_item_fts) VALUES ('rebuild')",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS annotator_item_fts_insert",
    "DROP TRIGGER IF EXISTS annotator_item_fts_delete",
    "DROP TRIGGER IF EXISTS annotator_item_fts_update",
    "DROP TABLE IF EXISTS annotator_item_fts",
]
# pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it
POSTGRES_CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS item_text_trgm_idx ON annotator_item "
    "USING gin (text gin_trgm_ops)",
]
# the extension stays: something else may use it, and it may have been there before
POSTGRES_DROP = ["DROP INDEX IF EXISTS item_text_trgm_idx"]


def create_text_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in {"sqlite": SQLITE_CREATE, "postgresql": POSTGRES_CREATE}.get(vendor, []):
        schema_editor.execute(statement)


def drop_text_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in {"sqlite": SQLITE_DROP, "postgresql": POSTGRES_DROP}.get(vendor, []):
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("annotator", "0020_background_failures")]

    operations = [
        migrations.RunPython(create_text_index, drop_text_index, elidable=False),
    ]
