"""Distill a model version into a faster student: in this process with a progress bar, or
--enqueue for a training worker."""

from django.core.management.base import BaseCommand, CommandError

from annotator.management.progress import step_bar
from annotator.models import ModelVersion
from annotator.queueing import enqueue as send
from annotator.services.distillation import model_version_distill


class Command(BaseCommand):
    help = ("Train a student with the version's bottom --layers encoder blocks on its "
            "predictions over the project's pool; stored as a new, inactive version.")

    def add_arguments(self, parser):
        parser.add_argument("project", type=int, help="project id")
        parser.add_argument("version", type=int, nargs="?",
                            help="version number (default: the active one)")
        parser.add_argument("--layers", type=int, default=None,
                            help="encoder blocks the student keeps (default: DISTILL_LAYERS)")
        parser.add_argument("--enqueue", action="store_true",
                            help="queue it for a Celery worker instead of training here")

    def handle(self, *args, project: int, version: int | None, layers: int | None,
               enqueue: bool, **options):
        versions = ModelVersion.objects.filter(project_id=project)
        teacher = (versions.filter(version=version) if version else
                   versions.filter(is_active=True)).first()
        if teacher is None:
            raise CommandError(f"project {project} has no version {version}" if version else
                               f"project {project} has no active version")
        if enqueue:
            send("annotator.tasks.distill_version_task", teacher.pk, layers)
            self.stdout.write(f"distillation of v{teacher.version} queued")
            return
        bar, progress = step_bar(f"distilling v{teacher.version}")

        try:
            student = model_version_distill(model_version_id=teacher.pk, layers=layers,
                                            progress=progress)
        except ValueError as error:
            raise CommandError(str(error)) from None
        finally:
            bar.close()
        metrics = student.metrics
        f1 = (f"macro-F1 {metrics['macro_f1']:.3f} on gold (teacher "
              f"{teacher.metrics.get('macro_f1', float('nan')):.3f}), agrees with the teacher "
              f"on {metrics['agreement_with_teacher']:.0%}" if "macro_f1" in metrics
              else "no gold set to evaluate on")
        self.stdout.write(self.style.SUCCESS(
            f"v{student.version} ({student.base_model_source}): {f1}; not active: "
            f"activate it on the model registry page"))
