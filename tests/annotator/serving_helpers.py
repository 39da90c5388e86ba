"""A real tiny classifier, trained once per test process, registered as model versions."""

import functools
import shutil
import tempfile
from pathlib import Path

from django.core.files.storage import storages
from rest_framework.test import APIClient

from annotator.models import ApiToken, ModelVersion
from annotator.services.tokens import api_token_create
from tests.trainer.tiny import LABELS, train_tiny


@functools.cache
def tiny_model_dir() -> Path:
    """Two real fine-tuning steps of the bundled model, max_length 16 (a few seconds)."""
    out = Path(tempfile.mkdtemp(prefix="api-tiny-model-"))
    train_tiny(out, max_length=16)
    return out


def add_version(project, number: int, *, active: bool = False, files: bool = True):
    """A ModelVersion whose files are the tiny model in the artifacts storage."""
    prefix = f"projects/{project.id}/v{number}"
    target = Path(storages["artifacts"].path(prefix))
    shutil.rmtree(target, ignore_errors=True)  # ids come back after a rolled-back test
    if files:
        shutil.copytree(tiny_model_dir(), target)
    else:
        target.mkdir(parents=True, exist_ok=True)
    return ModelVersion.objects.create(
        project=project, version=number, artifact_path=prefix, label_names=LABELS,
        base_model="tiny", is_active=active, max_length=16,  # as the tiny model was trained
    )


_keys: dict[int, str] = {}  # the key made for a user id (only its hash is stored)


def token_client(user) -> APIClient:
    """An API client with the user's token: made on first use (ids come back after a
    rolled-back test: a key whose hash is gone is made again)."""
    key = _keys.get(user.pk)
    if key is None or not ApiToken.objects.filter(user=user,
                                                  digest=ApiToken.digest_of(key)).exists():
        key = _keys[user.pk] = api_token_create(user=user, replace=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client
