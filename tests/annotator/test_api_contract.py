"""The API fuzzed with schemathesis against the schema it serves (bounded).

Schemathesis' built-in checks run on every response (no 5xx, documented status codes and
content types, response bodies match the schema, requests without credentials are refused,
schema-invalid bodies are rejected). Its "schema-valid data is accepted" check is replaced
by an exact oracle: a JSON body gets 200 if and only if every text is a string that is
non-empty after cleaning and within the length limit — a rule JSON Schema cannot express.
"""

import re
from unittest import mock

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from annotator.lib.cleaning import clean_text
from annotator.ml import serving
from annotator.models import Annotation, Prediction
from tests.annotator.serving_helpers import add_version, token_client
from tests.annotator.training_helpers import add_labeled_items

PATH = "/api/projects/{project_id}/predict"


@pytest.fixture
def auth(labeler) -> dict:
    return {"Authorization": token_client(labeler)._credentials["HTTP_AUTHORIZATION"]}


@pytest.fixture
def api_schema(auth):
    # As django.test.Client does: keep the test's connection open across WSGI requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:  # the schema is served to logged-in users and token holders only
        yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(),
                                             headers=auth)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _acceptable(body) -> bool:
    texts = body.get("texts") if isinstance(body, dict) else None
    limit = django_settings.IMPORT_MAX_TEXT_CHARS
    return (
        isinstance(texts, list)
        and 1 <= len(texts) <= django_settings.API_MAX_TEXTS
        and all(isinstance(t, str) and len(t) <= limit and 0 < len(clean_text(t)) <= limit
                for t in texts)
    )


def test_predict_honours_its_schema_for_generated_inputs(api_schema, auth, project):
    add_version(project, 1, active=True)
    serving.clear()
    operation = api_schema[PATH]["POST"]
    cases = st.one_of(
        operation.as_strategy(mode, path_parameters={"project_id": project.id})
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    )
    statuses = []

    @settings(max_examples=30, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def check(case):
        response = case.call(headers=auth)
        case.validate_response(response, headers=auth, excluded_checks=[positive_data_acceptance])
        if case.media_type == "application/json":
            assert (response.status_code == 200) == _acceptable(case.body), response.text
        statuses.append(response.status_code)

    check()
    serving.clear()
    assert 200 in statuses and 400 in statuses  # both sides of the contract were exercised


# --- every endpoint the schema lists (bounded) ----------------------------------------------

WORKFLOW = ("/annotations/", "/export.jsonl", "/versions/", "/retrain")


@pytest.fixture
def staff_auth(admin_user) -> dict:
    return {"Authorization": token_client(admin_user)._credentials["HTTP_AUTHORIZATION"]}


@pytest.fixture
def staff_schema(staff_auth):
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(),
                                             headers=staff_auth)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def workflow(project, labeler, admin_user):
    """A project with a few labeled items and an active version whose files exist; the
    first item has the version's prediction (the item endpoint once answered 500 there)."""
    add_labeled_items(project, labeler)
    item = project.items.first()
    Annotation.objects.create(item=item, labeler=admin_user, label="negative")
    version = add_version(project, 1, active=True)
    Prediction.objects.create(item=item, model_version=version, label="negative",
                              probabilities=[0.8, 0.1, 0.1], uncertainty=0.3)
    serving.clear()
    with mock.patch("annotator.tasks.train_project_task.delay"), \
            mock.patch("annotator.tasks.score_pool_task.delay"):
        yield {"project_id": project.id, "version_id": version.id, "item_id": item.id}
    serving.clear()


def _fuzz(operation, known: dict, examples: int, check_response) -> list[int]:
    names = set(re.findall(r"{(\w+)}", operation.path))
    fixed = {name: value for name, value in known.items() if name in names}
    cases = st.one_of(operation.as_strategy(mode, path_parameters=fixed)
                      for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE))
    statuses = []

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def check(case):
        statuses.append(check_response(case).status_code)

    check()
    return statuses


def _operations(schema):
    return [result.ok() for result in schema.get_all_operations()]


def test_no_endpoint_answers_5xx(staff_schema, staff_auth, workflow):
    """Whatever the schema lists (others add endpoints): a few cases each, never a 5xx."""
    def no_server_error(case):
        response = case.call(headers=staff_auth)
        case.validate_response(response, headers=staff_auth, checks=[not_a_server_error])
        return response

    operations = _operations(staff_schema)
    assert len(operations) > len(WORKFLOW)
    for operation in operations:
        assert _fuzz(operation, workflow, 6, no_server_error), operation.label


def test_the_workflow_endpoints_honour_their_schema(staff_schema, staff_auth, workflow):
    def conforms(case):
        response = case.call(headers=staff_auth)
        case.validate_response(response, headers=staff_auth,
                               excluded_checks=[positive_data_acceptance])
        return response

    mine = [op for op in _operations(staff_schema) if op.path.endswith(WORKFLOW)
            or "/versions/" in op.path or op.path.endswith("/items/{item_id}/")]
    assert len(mine) == 7
    statuses = set()
    for operation in mine:
        statuses.update(_fuzz(operation, workflow, 10, conforms))
    assert {200, 202} <= statuses  # reads and a queued retrain were exercised
