from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("annotator", "0011_monitoring"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="item",
            index=models.Index(fields=["project", "adjudicated_at"], name="item_adjudicated_idx"),
        ),
    ]
