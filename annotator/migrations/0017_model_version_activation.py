from django.db import migrations, models


def plain_run_errors(apps, schema_editor):
    """Errors stored with a traceback (and server paths) before: the runs table shows only a
    plain sentence; the traceback is in the worker's log."""
    TrainingRun = apps.get_model("annotator", "TrainingRun")
    for run in TrainingRun.objects.filter(error__contains="Traceback (most recent call last)"):
        kind = run.error.split(":", 1)[0].strip()
        kind = kind if kind.isidentifier() else "an unexpected error"
        run.error = f"training failed ({kind}); the details are in the worker's log"
        run.save(update_fields=["error"])


class Migration(migrations.Migration):

    dependencies = [
        ('annotator', '0016_model_version_distillation'),
    ]

    operations = [
        migrations.AddField(
            model_name='modelversion',
            name='activation',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name='modelversion',
            name='gold_predictions',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.RunPython(plain_run_errors, migrations.RunPython.noop),
    ]
