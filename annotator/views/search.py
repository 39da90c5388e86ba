"""The Find page (a project's admins; its labelers too where the project lets them label in
bulk): look for items by words or by meaning, "more like this", groups of near-duplicates,
select some and label them at once; undo such an action."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotator.forms.search import FindForm
from annotator.models import BulkLabeling, Item, Project
from annotator.permissions import can_manage, visible_project
from annotator.selectors.duplicates import duplicate_groups, group_items
from annotator.selectors.search import SearchRejected, items_search
from annotator.services.bulk_labeling import (
    SKIP_REASONS,
    BulkRefused,
    bulk_label,
    bulk_label_undo,
    may_bulk_label,
)
from annotator.services.near_duplicates import near_duplicates_request
from annotator.services.similarity import (
    NotSearchable,
    encoder_warm,
    similar_to_item,
    similar_to_text,
)

SHOWN = 200  # results on one page: each can be selected


def _project(user, project_id: int) -> Project:
    project = visible_project(user, project_id)
    if not may_bulk_label(user, project):
        raise PermissionDenied
    return project


def _results(project: Project, user, form: FindForm) -> tuple[list[tuple[Item, float | None]],
                                                               dict, str]:
    """(items with their similarity, the query that chose them, a problem to show)."""
    data = form.cleaned_data
    try:
        if data.get("like"):
            item = get_object_or_404(Item, project=project, pk=data["like"],
                                     split=Item.Split.POOL)
            found = similar_to_item(project=project, item=item, k=SHOWN)
            query = {"kind": "similar", "item": item.pk}
        elif data.get("group"):
            found = [(item.pk, None) for item in group_items(project, data["group"])[:SHOWN]]
            query = {"kind": "group", "group": data["group"]}
        elif data.get("mode") == "meaning" and data.get("q"):
            found = similar_to_text(project=project, text=data["q"], k=SHOWN)
            query = {"kind": "meaning", "q": data["q"]}
        else:
            rows = items_search(project=project, user=user, query=data.get("q") or "",
                                label=data.get("label") or "",
                                sort=data.get("sort") or "relevance")
            found = [(item.pk, None) for item in rows[:SHOWN]]
            query = {"kind": "words", "q": data.get("q") or "", "label": data.get("label") or ""}
    except (NotSearchable, SearchRejected) as problem:
        return [], {}, str(problem)
    items = Item.objects.in_bulk([item_id for item_id, _ in found])
    return [(items[i], score) for i, score in found if i in items], query, ""


@login_required
@require_GET
def find(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project(request.user, project_id)
    encoder_warm(project)
    form = FindForm(request.GET or None)
    results, query, problem = [], {}, ""
    if form.is_bound:
        if form.is_valid():
            results, query, problem = _results(project, request.user, form)
        else:
            problem = " ".join(" ".join(errors) for errors in form.errors.values())
    manager = can_manage(request.user, project)
    actions = project.bulk_labelings.select_related("user")
    if not manager:
        actions = actions.filter(user=request.user)
    return render(request, "annotator/search/find.html", {
        "project": project, "form": form, "results": results, "problem": problem,
        "query_json": json.dumps(query, ensure_ascii=False), "searched": form.is_bound,
        "groups": duplicate_groups(project, limit=20), "actions": actions[:10],
        "manager": manager, "shown": SHOWN,
    })


@login_required
@require_POST
def find_bulk_label(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project(request.user, project_id)
    back = request.POST.get("next") or reverse("find_items", args=[project.pk])
    if not back.startswith("/") or back.startswith("//"):
        back = reverse("find_items", args=[project.pk])
    try:
        ids = [int(value) for value in request.POST.getlist("item")]
        query = json.loads(request.POST.get("query") or "{}")
        if not isinstance(query, dict):
            raise ValueError
    except ValueError:
        messages.error(request, "The selection could not be read; search again.")
        return redirect(back)
    try:
        bulk, skipped = bulk_label(user=request.user, project=project, item_ids=ids,
                                   label=request.POST.get("label", ""), query=query)
    except BulkRefused as refused:
        messages.error(request, str(refused))
        return redirect(back)
    left = "; ".join(f"{len(item_ids)} {SKIP_REASONS[reason]}"
                     for reason, item_ids in skipped.items())
    messages.success(request, f"Labeled {bulk.labeled} item{'s' if bulk.labeled != 1 else ''} "
                              f"{bulk.label}." + (f" Left alone: {left}." if left else ""))
    return redirect(back)


@login_required
@require_POST
def find_bulk_undo(request: HttpRequest, project_id: int, bulk_id: int) -> HttpResponse:
    project = visible_project(request.user, project_id)
    bulk = get_object_or_404(BulkLabeling, pk=bulk_id, project=project)
    removed = bulk_label_undo(user=request.user, bulk=bulk)
    messages.success(request, f"Undone: {removed} label{'s' if removed != 1 else ''} "
                              f"{bulk.label} removed." if removed else "That was undone before.")
    return redirect(reverse("find_items", args=[project.pk]))


@login_required
@require_POST
def find_groups_refresh(request: HttpRequest, project_id: int) -> HttpResponse:
    project = visible_project(request.user, project_id, admin=True)
    near_duplicates_request(project=project)
    messages.success(request, "Looking for near-duplicates again: the groups update within a "
                              "minute or so (a big pool takes longer).")
    return redirect(reverse("find_items", args=[project.pk]))
