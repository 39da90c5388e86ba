"""Partial index for the labeling queue: unfinished items in serving order
(priority DESC NULLS LAST, random_key, id), see selectors.queue_for.

Raw SQL per vendor: PostgreSQL needs NULLS LAST spelled out to match the query's
ORDER BY; SQLite refuses the modifier in an index but already sorts NULLs last
in DESC order.
"""

from django.db import migrations


def create_index(apps, schema_editor):
    nulls_last = " NULLS LAST" if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        "CREATE INDEX item_open_queue_idx ON annotator_item "
        f"(project_id, priority DESC{nulls_last}, random_key, id) "
        "WHERE annotation_count < required_labels"
    )


def drop_index(apps, schema_editor):
    schema_editor.execute("DROP INDEX IF EXISTS item_open_queue_idx")


class Migration(migrations.Migration):
    dependencies = [("annotator", "0002_item_queue_reason")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
