"""What every page's template gets beyond Django's own."""

from annotator.models import Project


def background_failures(request) -> dict:
    """On a project's pages, its managers see the work that failed in the background
    (services/background_failures.py): label review, scoring, embeddings, imports, webhooks."""
    match = getattr(request, "resolver_match", None)
    user = getattr(request, "user", None)
    if match is None or user is None or not user.is_authenticated \
            or not request.path.startswith("/projects/"):
        return {}
    project_id = match.kwargs.get("project_id", match.kwargs.get("pk"))
    if not isinstance(project_id, int):
        return {}
    from annotator.permissions import can_manage
    from annotator.services.background_failures import failures_open

    project = Project.objects.filter(pk=project_id).first()
    if project is None or not can_manage(user, project):
        return {}
    return {"background_failures": failures_open(project), "failures_project": project}
