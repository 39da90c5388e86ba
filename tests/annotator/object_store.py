"""The "artifacts" storage in an S3 bucket (moto's in-process mock of AWS): the object store of
a deployment whose machines share no disk. A plugin of tests/conftest.py: ask for
`s3_artifacts`."""

import pytest

BUCKET = "annotator-tests"


@pytest.fixture
def s3_artifacts(settings, monkeypatch):
    """STORAGES["artifacts"] = S3Storage on an empty mocked bucket; yields the storage."""
    import boto3
    from django.core.files.storage import storages
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        settings.STORAGES = {**settings.STORAGES, "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": BUCKET, "region_name": "us-east-1",
                        "max_memory_size": 1024}}}
        yield storages["artifacts"]
