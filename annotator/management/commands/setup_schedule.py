"""Register the periodic tasks with django-celery-beat (idempotent).

The schedule lives in the database and can be edited in the admin afterwards.
"""

from django.core.management.base import BaseCommand
from django_celery_beat.models import IntervalSchedule, PeriodicTask

TASK = "annotator.tasks.retrain_due_projects_task"
SWEEP_TASK = "annotator.tasks.sweep_imports_task"
SWEEP_MINUTES = 5
RESUME_TASK = "annotator.tasks.resume_scoring_task"


class Command(BaseCommand):
    help = ("Create the 'retrain due projects', 'sweep stale imports' and 'resume stopped "
            "scorings' periodic tasks if missing.")

    def add_arguments(self, parser):
        parser.add_argument("--minutes", type=int, default=1, help="check interval (new task only)")

    def handle(self, *args, minutes: int, **options):
        for name, task, every_minutes in [("Retrain due projects", TASK, minutes),
                                          ("Sweep stale imports", SWEEP_TASK, SWEEP_MINUTES),
                                          ("Resume stopped scorings", RESUME_TASK, 1)]:
            if PeriodicTask.objects.filter(task=task).exists():
                self.stdout.write(f"{task}: schedule already present")
                continue
            every, _ = IntervalSchedule.objects.get_or_create(
                every=every_minutes, period=IntervalSchedule.MINUTES
            )
            PeriodicTask.objects.create(name=name, task=task, interval=every)
            self.stdout.write(f"scheduled {task} every {every_minutes} min")
