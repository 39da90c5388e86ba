"""The suspicious-label review (admins): the queue of flagged labels with the report per
labeler, and the review of one item (its labels, the model's reading, its flags)."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from annotator.ml import serving
from annotator.models import Item, LabelFlag
from annotator.permissions import can_manage, visible_project
from annotator.selectors.label_review import label_review_queue, label_review_report


@login_required
@require_GET
def label_review_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = visible_project(request.user, project_id, admin=True)
    return render(request, "annotator/labeling/label_review.html", {
        "project": project,
        "queue": label_review_queue(project),
        "report": label_review_report(project),
        "min_labels": settings.LABEL_REVIEW_MIN_LABELS,
    })


@login_required
@require_GET
def item_review(request: HttpRequest, project_id: int, item_id: int) -> HttpResponse:
    project = visible_project(request.user, project_id, admin=True)
    item = get_object_or_404(Item, pk=item_id, project=project)
    return render(request, "annotator/labeling/item_review.html", {
        "project": project,
        "item": item,
        "annotations": item.annotations.select_related("labeler", "model_version")
                                       .order_by("created_at"),
        "flags": LabelFlag.objects.filter(item=item).select_related("model_version")
                                  .order_by("-created_at"),
    })


@login_required
@require_GET
def item_explanation(request: HttpRequest, project_id: int, item_id: int) -> JsonResponse:
    """The active model's label for the item and the words that pushed it (JSON). Admins
    always; labelers where the project shows suggestions (it explains a suggestion), never
    on a gold item (404: held out from them)."""
    project = visible_project(request.user, project_id)
    manager = can_manage(request.user, project)
    if not (manager or project.show_suggestions):
        raise PermissionDenied
    items = Item.objects.filter(project=project)
    item = get_object_or_404(items if manager else items.exclude(split=Item.Split.GOLD),
                             pk=item_id)
    try:
        explanation = serving.explain_item(project_id=project.pk, item_id=item.pk, text=item.text)
    except serving.NoActiveModel:
        return JsonResponse({"error": "No model yet: the first fine-tune explains."}, status=409)
    except serving.ModelUnavailable:
        return JsonResponse({"error": "The active model cannot be loaded right now."}, status=503)
    return JsonResponse(explanation)
