"""The prediction API fuzzed with schemathesis against the schema it serves (bounded).

Schemathesis' built-in checks run on every response (no 5xx, documented status codes and
content types, response bodies match the schema, requests without credentials are refused,
schema-invalid bodies are rejected). Its "schema-valid data is accepted" check is replaced
by an exact oracle: a JSON body gets 200 if and only if every text is a string that is
non-empty after cleaning and within the length limit — a rule JSON Schema cannot express.
"""

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from annotator import serving
from annotator.cleaning import clean_text
from tests.annotator.serving_helpers import add_version, token_client

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
