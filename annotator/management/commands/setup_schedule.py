"""Register the periodic retrain check with django-celery-beat (idempotent).

The schedule lives in the database and can be edited in the admin afterwards.
"""

from django.core.management.base import BaseCommand
from django_celery_beat.models import IntervalSchedule, PeriodicTask

TASK = "annotator.tasks.retrain_due_projects_task"


class Command(BaseCommand):
    help = "Create the 'retrain due projects' periodic task if it does not exist."

    def add_arguments(self, parser):
        parser.add_argument("--minutes", type=int, default=1, help="check interval (new task only)")

    def handle(self, *args, minutes: int, **options):
        if PeriodicTask.objects.filter(task=TASK).exists():
            self.stdout.write("schedule already present")
            return
        every, _ = IntervalSchedule.objects.get_or_create(
            every=minutes, period=IntervalSchedule.MINUTES
        )
        PeriodicTask.objects.create(name="Retrain due projects", task=TASK, interval=every)
        self.stdout.write(f"scheduled {TASK} every {minutes} min")
