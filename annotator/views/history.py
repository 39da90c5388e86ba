"""A labeler's own labels: the "My labels" page and changing one of them."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from annotator.models import Annotation, Item
from annotator.permissions import can_manage, labeled_project
from annotator.selectors.annotations import annotations_by_item
from annotator.selectors.search import SearchRejected, items_search
from annotator.services import labeling

PER_PAGE = 50
SORTS = {"relevance": "best match", "newest": "recently labeled", "oldest": "first labeled"}


@login_required
@require_GET
def my_labels(request: HttpRequest, project_id: int) -> HttpResponse:
    """The items the user labeled, searched with selectors.search (their own labels only:
    `labeler` is themselves); best match first, or most recently labeled without a text."""
    project = labeled_project(request.user, project_id)
    text, label = request.GET.get("q", "").strip(), request.GET.get("label", "")
    sort = request.GET.get("sort", "") if request.GET.get("sort", "") in SORTS else "relevance"
    problem = ""
    try:
        items = items_search(project=project, user=request.user, query=text, label=label,
                             labeler=request.user.get_username(), sort=sort)
    except SearchRejected as error:
        problem, items = str(error), Item.objects.none()
    page = Paginator(items, PER_PAGE).get_page(request.GET.get("page"))
    mine = annotations_by_item(request.user, [item.pk for item in page])
    for item in page:
        item.my_annotation = mine.get(item.pk)
    return render(request, "annotator/labeling/my_labels.html", {
        "project": project, "page": page, "q": text, "label": label, "sort": sort,
        "sorts": SORTS, "problem": problem,
        # blind labeling: an admin's final label is a verdict on the others' labels too
        "show_adjudications": can_manage(request.user, project),
        "filters": urlencode({k: v for k, v in (("q", text), ("label", label), ("sort", sort))
                              if v and (k, v) != ("sort", "relevance")}),
    })


@login_required
@require_POST
def my_label_change(request: HttpRequest, project_id: int, annotation_id: int) -> HttpResponse:
    project = labeled_project(request.user, project_id)
    annotation = get_object_or_404(Annotation.objects.select_related("item"),
                                   pk=annotation_id, item__project=project)
    annotation.item.project = project  # already loaded and checked
    try:
        labeling.annotation_change(labeler=request.user, annotation=annotation,
                                   label=request.POST.get("label", ""))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Item #{annotation.item_id}: your label is now "
                                  f"{annotation.label}.")
        if annotation.item.final_label and can_manage(request.user, project):
            messages.info(request, f"An admin adjudicated item #{annotation.item_id} as "
                                   f"{annotation.item.final_label}: training and the export "
                                   "keep that final label.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()},
                                           require_https=request.is_secure()):
        back = reverse("my_labels", args=[project.pk])
    return redirect(f"{back}#annotation-{annotation.pk}")
