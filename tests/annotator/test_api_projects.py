"""Projects API: who sees, creates and changes which project; the app's label-set rules."""

from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from annotator.models import Membership, Project
from tests.annotator.serving_helpers import token_client

LABELS = [{"name": "negative"}, {"name": "neutral"}, {"name": "positive"}]


def _project_admin(project):
    user = get_user_model().objects.create_user("ada")
    Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
    return user


def test_anonymous_requests_get_401(project):
    client = APIClient()
    assert client.get("/api/projects/").status_code == 401
    assert client.get(f"/api/projects/{project.pk}/").status_code == 401
    assert client.post("/api/projects/", {"name": "X", "labels": LABELS},
                       format="json").status_code == 401


def test_a_labeler_lists_only_their_projects(project, other_project, labeler):
    response = token_client(labeler).get("/api/projects/")
    assert response.status_code == 200
    assert [row["name"] for row in response.json()] == ["Shoes"]


def test_the_api_lists_the_projects_the_pages_list(project, other_project, labeler):
    """One answer to "which projects may this user see": an archived project leaves a
    labeler's list on the API as on the projects page; its admin still sees it."""
    from django.utils import timezone

    project.archived_at = timezone.now()
    project.save(update_fields=["archived_at"])
    assert token_client(labeler).get("/api/projects/").json() == []
    lead = _project_admin(project)
    assert [row["name"] for row in token_client(lead).get("/api/projects/").json()] == ["Shoes"]


def test_staff_list_every_project(project, other_project, admin_user):
    names = [row["name"] for row in token_client(admin_user).get("/api/projects/").json()]
    assert sorted(names) == ["Phones", "Shoes"]


def test_a_member_reads_the_project_with_its_labels(project, labeler):
    body = token_client(labeler).get(f"/api/projects/{project.pk}/").json()
    assert body["name"] == "Shoes"
    assert all({"name", "key", "color"} <= set(label) for label in body["labels"])


def test_a_labeler_of_another_project_gets_403_and_an_unknown_project_404(project, outsider):
    client = token_client(outsider)
    assert client.get(f"/api/projects/{project.pk}/").status_code == 403
    assert client.get("/api/projects/999999/").status_code == 404


def test_staff_create_a_project_with_the_label_set_filled_in(admin_user):
    response = token_client(admin_user).post(
        "/api/projects/", {"name": "Bags", "labels": LABELS}, format="json")
    assert response.status_code == 201, response.content
    project = Project.objects.get(name="Bags")
    assert project.label_names == ["negative", "neutral", "positive"]
    assert all(label["key"] and label["color"] for label in response.json()["labels"])


def test_a_labeler_cannot_create_a_project(labeler):
    response = token_client(labeler).post("/api/projects/", {"name": "Bags", "labels": LABELS},
                                          format="json")
    assert response.status_code == 403
    assert "staff" in response.json()["detail"]


def test_a_bad_label_set_is_refused_with_the_apps_message(admin_user):
    client = token_client(admin_user)
    one = client.post("/api/projects/", {"name": "Bags", "labels": [{"name": "only"}]},
                      format="json")
    assert one.status_code == 400
    assert "2 to 20 labels" in one.json()["labels"][0]
    twice = client.post("/api/projects/", {"name": "Bags", "labels": [
        {"name": "Good"}, {"name": "good"}]}, format="json")
    assert "same name" in twice.json()["labels"][0]
    assert not Project.objects.filter(name="Bags").exists()


def test_missing_labels_unknown_fields_and_bad_settings_are_400(admin_user, project):
    client = token_client(admin_user)
    assert "labels" in client.post("/api/projects/", {"name": "Bags"}, format="json").json()
    unknown = client.post("/api/projects/", {"name": "B", "labels": LABELS, "colour": 1},
                          format="json")
    assert unknown.status_code == 400 and "colour" in unknown.json()["detail"]
    taken = client.post("/api/projects/", {"name": "Shoes", "labels": LABELS}, format="json")
    assert taken.status_code == 400 and "name" in taken.json()
    epochs = client.patch(f"/api/projects/{project.pk}/", {"epochs": 500}, format="json")
    assert epochs.status_code == 400 and "epochs" in epochs.json()


def test_a_body_that_is_not_json_is_400(admin_user):
    response = token_client(admin_user).post("/api/projects/", "{not json",
                                             content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_the_project_admin_changes_settings_and_labels(project):
    client = token_client(_project_admin(project))
    response = client.patch(f"/api/projects/{project.pk}/", {
        "description": "Shoe reviews from Tmall",
        "labels": [{"name": "bad"}, {"name": "good"}]}, format="json")
    assert response.status_code == 200, response.content
    project.refresh_from_db()
    assert project.description == "Shoe reviews from Tmall"
    assert project.label_names == ["bad", "good"]
    assert project.name == "Shoes"  # fields not sent stay


def test_a_labeler_cannot_change_the_project(project, labeler):
    response = token_client(labeler).patch(f"/api/projects/{project.pk}/",
                                           {"description": "mine"}, format="json")
    assert response.status_code == 403
    project.refresh_from_db()
    assert project.description == ""


def test_the_schema_documents_every_endpoint(admin_user):
    schema = token_client(admin_user).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    for path, methods in {
        "/api/projects/": {"get", "post"},
        "/api/projects/{project_id}/": {"get", "patch"},
        "/api/projects/{project_id}/items/": {"get", "post"},
        "/api/projects/{project_id}/items/{item_id}/": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
    push = paths["/api/projects/{project_id}/items/"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-ndjson"} <= set(push)
    assert push["application/json"]["examples"]
