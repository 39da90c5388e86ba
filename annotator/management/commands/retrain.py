"""Retrain a project's model now: in this process with a progress bar, or --enqueue."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotator.management.progress import step_bar
from annotator.management.projects import project_named
from annotator.models import TrainingRun
from annotator.services.training import (
    NothingNewToLearn,
    TooFewClasses,
    training_request,
    training_run_execute,
)
from trainer.evaluate import metrics_reliability


class Command(BaseCommand):
    help = "Retrain a project's model (by id or name). Runs here unless --enqueue."

    def add_arguments(self, parser):
        parser.add_argument("project", help="project id or name")
        parser.add_argument("--enqueue", action="store_true",
                            help="queue the run for a Celery worker instead of training here")
        parser.add_argument("--force", action="store_true",
                            help="train even if no label changed since the active version")

    def handle(self, *args, project: str, enqueue: bool, force: bool, **options):
        project = project_named(project)
        try:
            with transaction.atomic():
                run = training_request(project=project, trigger=TrainingRun.Trigger.COMMAND,
                                       enqueue=enqueue, force=force)
        except TooFewClasses as refused:
            raise CommandError(f"nothing queued: {refused}") from None
        except NothingNewToLearn as nothing:
            raise CommandError(f"{nothing}; --force trains anyway") from None
        if run is None:
            raise CommandError("could not queue a run")
        if enqueue:
            self.stdout.write(f"run {run.id} {run.status}")
            return
        bar, progress = step_bar(f"run {run.id}")

        version = training_run_execute(run_id=run.id, progress=progress)
        bar.close()
        run.refresh_from_db()
        if version is None:
            reason = run.error.splitlines()[0] if run.error else "taken by another worker"
            raise CommandError(f"run {run.id} {run.status}: {reason}")
        metrics = version.metrics
        reliability = metrics_reliability(metrics)
        style = self.style.SUCCESS if version.is_active else self.style.WARNING
        self.stdout.write(style(
            f"v{version.version} {'active' if version.is_active else 'not active'}: "
            f"{version.label_count} labels, "
            f"macro-F1 {metrics.get('macro_f1', float('nan')):.3f} "
            f"on {metrics.get('evaluated_on', '-')} (n={reliability['n']}), "
            f"{version.duration_seconds:.1f} s on {version.device}"
        ))
        if not reliability["reliable"]:
            self.stdout.write(self.style.WARNING(f"unreliable estimate: {reliability['reason']}"))
        if version.activation.get("reason"):
            self.stdout.write(style(version.activation["reason"]))
