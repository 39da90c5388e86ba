"""How far labeling has come: a project's counts and one labeler's day."""

from datetime import datetime, time

from django.core.cache import cache
from django.db.models import Count, F, Q
from django.utils import timezone

from annotator.models import Annotation, Project
from annotator.selectors.queue import labelable_items

# Counting a 100k-item project on every request costs more than the rest of the
# request; the project-wide figures may be a few seconds old.
PROJECT_PROGRESS_CACHE_SECONDS = 5


def project_progress(project: Project) -> dict:
    """Items with all their labels / items people label; cached a few seconds."""

    def count() -> dict:
        return labelable_items(project).aggregate(
            total=Count("pk"),
            done=Count("pk", filter=Q(annotation_count__gte=F("required_labels"))),
        )

    return cache.get_or_set(
        f"labeling-progress:{project.pk}", count, PROJECT_PROGRESS_CACHE_SECONDS
    )


def start_of_today() -> datetime:
    """Local midnight: "today" in the labelers' and the team lead's figures."""
    return timezone.make_aware(datetime.combine(timezone.localdate(), time.min))


def labeling_progress(labeler, project: Project) -> dict:
    """My labels today (exact) and project labeled / total (a few seconds old at most)."""
    mine_today = Annotation.objects.filter(
        labeler=labeler, item__project=project, created_at__gte=start_of_today()
    ).count()
    counts = project_progress(project)
    return {"mine_today": mine_today, "done": counts["done"], "total": counts["total"]}
