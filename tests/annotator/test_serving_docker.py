"""docker/: the files parse and name what a deployment needs (no Docker engine in CI)."""

import re
from pathlib import Path

import pytest
import yaml  # comes with drf-spectacular

DOCKER = Path(__file__).resolve().parents[2] / "docker"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_names_every_service_with_a_health_check(compose):
    services = compose["services"]
    names = {"db", "redis", "web", "worker-training", "worker-scoring", "worker-ranking", "beat"}
    assert names <= set(services)
    for name in sorted(names):
        assert "test" in services[name]["healthcheck"], name


def test_workers_listen_on_their_queues_and_training_runs_one_at_a_time(compose):
    training = " ".join(compose["services"]["worker-training"]["command"])
    scoring = " ".join(compose["services"]["worker-scoring"]["command"])
    assert "-Q training" in training and "--concurrency 1" in training
    assert "-Q scoring,default" in scoring
    ranking = " ".join(compose["services"]["worker-ranking"]["command"])
    assert "-Q ranking" in ranking  # the fast loop never waits behind a scoring or an import


def test_bin_up_starts_a_worker_for_every_queue_a_task_is_routed_to():
    from pathlib import Path

    from django.conf import settings

    up = (Path(__file__).resolve().parents[2] / "bin" / "up").read_text()
    served = {q for line in up.splitlines() if " -Q " in line
              for q in line.split(" -Q ")[1].split()[0].split(",")}
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed | {settings.CELERY_TASK_DEFAULT_QUEUE} <= served


def test_app_services_share_the_artifacts_volume_and_wait_for_db_and_redis(compose):
    for name in ("init", "web", "worker-training", "worker-scoring", "worker-ranking", "beat"):
        service = compose["services"][name]
        assert "annotator-var:/var/lib/annotator" in service["volumes"], name
        assert service["depends_on"]["db"]["condition"] == "service_healthy", name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
    assert "migrate" in " ".join(compose["services"]["init"]["command"])
    assert compose["services"]["web"]["depends_on"]["init"]["condition"] == (
        "service_completed_successfully"
    )


def test_the_gpu_override_reserves_an_nvidia_device_for_training():
    override = yaml.safe_load((DOCKER / "compose.gpu.yaml").read_text())
    devices = override["services"]["worker-training"]["deploy"]["resources"]["reservations"][
        "devices"
    ]
    assert devices[0]["driver"] == "nvidia"


def test_the_dockerfile_is_slim_runs_as_a_user_and_checks_health():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert re.search(r"^HEALTHCHECK .*", dockerfile, re.M)
    assert 'torch==$TORCH_VERSION' in dockerfile and "ARG TORCH_INDEX=" in dockerfile


def test_the_example_env_sets_every_required_variable():
    names = {line.split("=", 1)[0] for line in (DOCKER / "env.example").read_text().splitlines()
             if line and not line.startswith("#")}
    assert {"SECRET_KEY", "POSTGRES_PASSWORD", "ALLOWED_HOSTS"} <= names
