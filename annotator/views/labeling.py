"""Labeling pages: the one-item-at-a-time labeling page with its small JSON
endpoints (next, submit, skip, undo), and the admin's agreement page."""

import functools
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from annotator.models import Item, Project
from annotator.permissions import visible_project
from annotator.selectors import agreement as selectors_agreement
from annotator.selectors import queue as queue_selectors
from annotator.selectors.annotations import last_annotation_of
from annotator.selectors.duplicates import near_duplicate_count
from annotator.selectors.progress import labeling_progress
from annotator.selectors.queue import item_to_submit
from annotator.services import labeling, zero_shot

SKIPPED_KEPT = 500  # how many skipped ids a session remembers per project
ARCHIVED_NOTICE = "This project is archived: it takes no more labels."


def _server_timing(view):
    """Server-Timing header with the view's own time, read by the load benchmark.

    Only with settings.SERVER_TIMING (ANNOTATOR_SERVER_TIMING=1): production does not show
    its internal timings.
    """

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.SERVER_TIMING:
            return view(request, *args, **kwargs)
        started = time.perf_counter()
        response = view(request, *args, **kwargs)
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    return wrapper


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float_or_none(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _skipped_key(project: Project) -> str:
    return f"skipped:{project.pk}"


def _item_payload(item: Item, *, current_label: str = "") -> dict:
    """What the page shows of an item. Plain data: the page puts it in with textContent.
    With a suggestion comes the address of its explanation (the words that pushed it)."""
    meta = [
        [str(key), str(value)]
        for key, value in (item.meta or {}).items()
        if isinstance(value, str | int | float) and str(value) != ""
    ]
    suggestion = _suggestion(item)
    turns = [
        {"speaker": str(turn.get("speaker", "")), "text": str(turn.get("text", ""))}
        for turn in (item.turns or [])
        if isinstance(turn, dict)
    ]
    # w explains a trained model's suggestion; a zero-shot one has no model behind it
    explained = bool(suggestion) and "source" not in suggestion and not turns
    return {
        "id": item.pk,
        "kind": item.kind,
        "text": item.text,
        "turns": turns,
        "meta": meta,
        "overlap": item.required_labels > 1,
        "gold": item.split == Item.Split.GOLD,
        "current_label": current_label,
        "suggestion": suggestion,
        "explain_url": reverse("item_explanation", args=[item.project_id, item.pk])
                       if explained else "",
        "no_explanation": "" if explained else _no_explanation(item, turns, suggestion),
        "near_duplicates": near_duplicate_count(item),
    }


def _no_explanation(item: Item, turns: list, suggestion: dict | None = None) -> str:
    """Why `w` has nothing to show for this item, in the words the page prints."""
    if item.split == Item.Split.GOLD:
        return ("No explanation on a gold item: it is labelled without the model's help, so "
                "the model can be judged on it.")
    if not item.project.show_suggestions:
        return ("No explanation: the model's suggestions are off in this project (a manager "
                "can turn them on in the project settings).")
    if turns:
        return "No explanation for a conversation: w explains single texts."
    if suggestion and suggestion.get("source") == "zero_shot":
        return ("No explanation: no model is trained yet; the suggestion is zero-shot, the "
                "label whose description reads most like this text.")
    return "No explanation yet: the model has no suggestion for this item."


def _suggestion(item: Item) -> dict | None:
    """The model's suggestion ({label, confidence}); while no version is active, the
    zero-shot one from the label descriptions, marked by its source and provenance."""
    suggestion = queue_selectors.suggestion_for(item)
    if suggestion is None:
        return zero_shot.zero_shot_suggestion(item=item)
    label, confidence = suggestion
    return {"label": label, "confidence": round(confidence, 3)}


def _next_payload(request: HttpRequest, project: Project, **extra) -> dict:
    if project.archived_at:  # archived while the page was open
        item, extra["notice"] = None, ARCHIVED_NOTICE
    else:
        skipped = request.session.get(_skipped_key(project), [])
        item = labeling.item_next_claim(labeler=request.user, project=project, exclude_ids=skipped)
    if item:
        item.project = project  # already loaded: the suggestion check needs no query
    return {
        "item": _item_payload(item) if item else None,
        "progress": labeling_progress(request.user, project),
        **extra,
    }


@login_required
@require_GET
def label_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = visible_project(request.user, project_id)
    if project.archived_at:
        return render(request, "annotator/labeling/archived.html", {"project": project},
                      status=410)
    config = {
        "labels": project.label_set,
        "urls": {
            name: reverse(f"label_{name}", args=[project.pk])
            for name in ("next", "submit", "skip", "undo")
        },
        "initial": _next_payload(request, project),
    }
    return render(request, "annotator/labeling/label.html", {"project": project, "config": config})


@login_required
@require_GET
@_server_timing
def label_next(request: HttpRequest, project_id: int) -> JsonResponse:
    project = visible_project(request.user, project_id)
    return JsonResponse(_next_payload(request, project))


@login_required
@require_POST
@_server_timing
def label_submit(request: HttpRequest, project_id: int) -> JsonResponse:
    item = item_to_submit(
        request.user, project_id=project_id, item_id=_int_or_none(request.POST.get("item"))
    )
    if item is None:
        raise Http404("no such item in your projects")
    project = item.project
    notice = ""
    try:
        labeling.annotation_submit(
            labeler=request.user,
            item=item,
            label=request.POST.get("label", ""),
            seconds_spent=_float_or_none(request.POST.get("seconds")),
        )
    except ValidationError as error:
        return JsonResponse({"error": " ".join(error.messages)}, status=400)
    except PermissionDenied as error:
        return JsonResponse({"error": str(error) or "not allowed"}, status=403)
    except labeling.ItemNotLeased:
        return JsonResponse(
            {"error": "That item is not reserved for you (or your time on it ran out); "
                      "your label was not saved. Skip it to get your next item."},
            status=409,
        )
    except labeling.ItemAlreadyComplete:
        notice = "Someone else finished that item while it waited; your label was not needed."
    return JsonResponse(_next_payload(request, project, notice=notice))


@login_required
@require_POST
@_server_timing
def label_skip(request: HttpRequest, project_id: int) -> JsonResponse:
    project = visible_project(request.user, project_id)
    item_id = _int_or_none(request.POST.get("item"))
    if item_id is None:
        return JsonResponse({"error": "which item?"}, status=400)
    labeling.item_skip(labeler=request.user, item_id=item_id)
    skipped = request.session.get(_skipped_key(project), [])
    request.session[_skipped_key(project)] = [*skipped, item_id][-SKIPPED_KEPT:]
    return JsonResponse(_next_payload(request, project))


@login_required
@require_GET
def label_undo(request: HttpRequest, project_id: int) -> JsonResponse:
    """The item of my last label, to label again (submitting it changes the label)."""
    project = visible_project(request.user, project_id)
    last = last_annotation_of(request.user, project)
    if last is None:
        return JsonResponse({"item": None, "notice": "Nothing to undo yet."}, status=404)
    return JsonResponse(
        {
            "item": _item_payload(last.item, current_label=last.label),
            "progress": labeling_progress(request.user, project),
        }
    )


@login_required
@require_GET
def agreement_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = visible_project(request.user, project_id, admin=True)
    report = selectors_agreement.project_agreement(project)
    return render(
        request, "annotator/labeling/agreement.html", {"project": project, "report": report}
    )


@login_required
@require_POST
def adjudicate(request: HttpRequest, project_id: int, item_id: int) -> HttpResponse:
    project = visible_project(request.user, project_id, admin=True)
    item = get_object_or_404(Item, pk=item_id, project=project)
    try:
        labeling.item_adjudicate(admin=request.user, item=item, label=request.POST.get("label", ""))
        messages.success(request, f"Item #{item.pk}: final label {item.final_label}.")
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return redirect(back)
    return redirect(f"{reverse('agreement', args=[project.pk])}#item-{item.pk}")
