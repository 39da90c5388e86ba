import pytest
from django.contrib.auth import get_user_model

from annotator.models import Membership, Project

# CI (ANNOTATOR_REQUIRE_SERVICES=1): a skipped browser or postgres test fails the run;
# s3_artifacts: the artifacts storage in a mocked S3 bucket
pytest_plugins = ["tests.service_guard", "tests.annotator.object_store"]

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def empty_cache():
    """Login-failure and API-throttle counts live in the cache (locmem in tests), and the
    prediction API keeps loaded models per project id: none may carry over into the next
    test, where the same ids come back."""
    from django.core.cache import caches

    from annotator.ml import serving

    for alias in caches:
        caches[alias].clear()
    serving.clear()
    yield
    serving.clear()


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_user(
        "boss", password=PASSWORD, is_staff=True, is_superuser=True
    )


@pytest.fixture
def project(db):
    return Project.objects.create(name="Shoes")


@pytest.fixture
def other_project(db):
    return Project.objects.create(name="Phones")


@pytest.fixture
def labeler(project):
    user = get_user_model().objects.create_user("lena", password=PASSWORD)
    Membership.objects.create(project=project, user=user)
    return user


@pytest.fixture
def outsider(other_project):
    """A labeler who belongs to another project only."""
    user = get_user_model().objects.create_user("otto", password=PASSWORD)
    Membership.objects.create(project=other_project, user=user)
    return user


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def labeler_client(client, labeler):
    client.force_login(labeler)
    return client


@pytest.fixture
def outsider_client(client, outsider):
    client.force_login(outsider)
    return client


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A real fine-tune of the bundled model, a few steps at max length 16, once per run."""
    from tests.trainer.tiny import train_tiny

    out = tmp_path_factory.mktemp("tiny-model")
    train_tiny(out, max_length=16)
    return out


@pytest.fixture
def lead(project):
    """The project's admin (team lead): manages this project only."""
    user = get_user_model().objects.create_user("tess", email="tess@example.com",
                                                password=PASSWORD)
    Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def lead_client(client, lead):
    client.force_login(lead)
    return client


@pytest.fixture
def other_lead(other_project):
    """The admin of another project."""
    user = get_user_model().objects.create_user("olga", password=PASSWORD)
    Membership.objects.create(project=other_project, user=user, role=Membership.Role.ADMIN)
    return user

