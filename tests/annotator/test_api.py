"""Prediction API: authentication, access, validation errors, predictions of the active model."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from annotator.ml import serving
from tests.annotator.serving_helpers import add_version, token_client
from tests.trainer.tiny import LABELS

URL = "/api/projects/{}/predict"



@pytest.fixture
def served(project):
    return add_version(project, 1, active=True)


def _post(client, project, body, **kw):
    return client.post(URL.format(project.id), body, format="json", **kw)


# --- authentication and access ------------------------------------------------------


def test_a_request_without_credentials_gets_401(project):
    response = _post(APIClient(), project, {"texts": ["fine"]})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_an_unknown_token_gets_401(project):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    assert _post(client, project, {"texts": ["fine"]}).status_code == 401


def test_a_user_of_another_project_gets_403(project, outsider):
    response = _post(token_client(outsider), project, {"texts": ["fine"]})
    assert response.status_code == 403
    assert "not a member" in response.json()["detail"]


def test_an_unknown_project_gets_404(labeler):
    response = token_client(labeler).post(URL.format(999_999), {"texts": ["x"]}, format="json")
    assert response.status_code == 404


def test_a_member_gets_a_label_and_probabilities_per_text(project, labeler, served):
    texts = ["love these shoes", "broke after a day", "arrived on tuesday"]
    response = _post(token_client(labeler), project, {"texts": texts})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_version"] == 1
    assert len(body["predictions"]) == 3
    for prediction in body["predictions"]:
        assert set(prediction["probabilities"]) == set(LABELS)
        assert sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        best = max(prediction["probabilities"], key=prediction["probabilities"].get)
        assert prediction["label"] == best


def test_staff_may_predict_in_any_project(project, admin_user, served):
    response = _post(token_client(admin_user), project, {"texts": ["great fit"]})
    assert response.status_code == 200
    assert response.json()["model_version"] == 1


def test_a_logged_in_member_may_use_the_session(project, labeler, served):
    client = APIClient(enforce_csrf_checks=False)
    client.force_login(labeler)
    assert _post(client, project, {"texts": ["great fit"]}).status_code == 200


def test_texts_are_cleaned_like_imports_before_prediction(project, labeler, served):
    response = _post(token_client(labeler), project,
                     {"texts": ["<p>great&nbsp;fit &amp; <b>comfy</b></p>", "great fit & comfy"]})
    first, second = response.json()["predictions"]
    assert first == second


def test_a_project_without_an_active_model_gets_409(project, labeler):
    add_version(project, 1, active=False, files=False)
    response = _post(token_client(labeler), project, {"texts": ["fine"]})
    assert response.status_code == 409
    assert "no active model" in response.json()["detail"]


def test_an_active_version_that_cannot_load_gets_503(project, labeler):
    add_version(project, 1, active=True, files=False)  # an empty folder
    response = _post(token_client(labeler), project, {"texts": ["fine"]})
    assert response.status_code == 503
    assert "cannot be loaded" in response.json()["detail"]


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({}, "texts", "required"),
        ({"texts": "one review"}, "texts", "Expected a list"),
        ({"texts": []}, "texts", "may not be empty"),
        ({"texts": [5]}, "texts", "must be a string, not int"),
        ({"texts": [True]}, "texts", "must be a string, not bool"),
        ({"texts": [None]}, "texts", "may not be null"),
        ({"texts": [["nested"]]}, "texts", "must be a string, not list"),
        ({"texts": ["fine", "   "]}, "texts", "texts[1] is empty after cleaning"),
        ({"texts": ["<p> </p>&#8203;"]}, "texts", "texts[0] is empty after cleaning"),
        ({"texts": ["fine"] * 65}, "texts", "no more than 64"),
        (["fine"], "non_field_errors", "Expected a dictionary"),
    ],
)
def test_bad_input_gets_400_naming_the_problem(project, labeler, body, field, message):
    response = _post(token_client(labeler), project, body)
    assert response.status_code == 400
    errors = response.json()
    assert field in errors
    assert message in str(errors[field])


def test_a_wrong_type_names_the_index_of_the_text(project, labeler):
    response = _post(token_client(labeler), project, {"texts": ["fine", "ok", 3.5]})
    assert response.json()["texts"] == {"2": ["must be a string, not float."]}


@override_settings(IMPORT_MAX_TEXT_CHARS=50)
def test_a_text_over_the_length_limit_gets_400(project, labeler):
    response = _post(token_client(labeler), project, {"texts": ["fine", "x" * 51]})
    assert response.status_code == 400
    assert "texts[1] is 51 characters after cleaning, over the limit of 50" in str(
        response.json()["texts"]
    )


def test_a_body_that_is_not_json_gets_400(project, labeler):
    response = token_client(labeler).post(URL.format(project.id), "{texts:",
                                          content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_a_form_encoded_body_gets_415(project, labeler):
    response = token_client(labeler).post(URL.format(project.id), {"texts": "fine"})
    assert response.status_code == 415


def test_validation_runs_before_any_model_is_loaded(project, labeler, served):
    _post(token_client(labeler), project, {"texts": []})
    assert serving._models == {}


# --- schema and tokens -------------------------------------------------------------------


def test_the_openapi_schema_documents_the_endpoint(labeler_client):
    response = labeler_client.get("/api/schema/",
                                  HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    operation = response.json()["paths"]["/api/projects/{project_id}/predict"]["post"]
    assert operation["operationId"] == "project_predict"
    assert {"200", "400", "401", "403", "404", "409", "429", "503"} <= set(operation["responses"])
    texts = response.json()["components"]["schemas"]["PredictRequest"]["properties"]["texts"]
    assert texts["maxItems"] == 64 and texts["minItems"] == 1




def test_the_swagger_ui_page_points_at_the_schema(labeler_client):
    response = labeler_client.get("/api/docs/")
    assert response.status_code == 200
    # its start script is a file of its own (no inline script under the CSP)
    assert b'<script src="/api/docs/?script="></script>' in response.content
    script = labeler_client.get("/api/docs/?script=")
    assert script["Content-Type"].startswith("application/javascript")
    assert b"/api/schema/" in script.content
