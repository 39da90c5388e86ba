"""docker/: the files parse and name what a deployment needs. The stack check
(docker/stack_check.sh, run by .ci/run) builds the image and runs these files; these tests keep
them honest where no Docker engine is (the normal suite)."""

import re
from pathlib import Path

import pytest
import yaml  # comes with drf-spectacular

DOCKER = Path(__file__).resolve().parents[2] / "docker"
SHARED = {"db", "redis", "objectstore"}  # what the app services share, and nothing else


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def app_services(compose):
    """Every service built from the image: init, web, the workers, beat."""
    return {name: service for name, service in compose["services"].items()
            if name not in SHARED}


def routed_queues() -> set[str]:
    """Every queue a task of the app is sent to, as Celery's router decides it (routes in
    settings, a task's own queue, the default)."""
    import annotator.tasks  # noqa: F401  (registers the tasks)
    from annotator.celery import app

    router = app.amqp.router
    return {router.route({"queue": task.queue} if getattr(task, "queue", None) else {},
                         name)["queue"].name
            for name, task in app.tasks.items() if name.startswith("annotator.")}


def _worker_queues(service: dict) -> set[str]:
    return set(service["environment"]["WORKER_QUEUES"].split(","))


def test_compose_names_every_service_with_a_health_check(compose, app_services):
    services = compose["services"]
    assert {"web", "beat", "init"} | SHARED <= set(services)
    for name in sorted(set(services) - {"init"}):
        assert "test" in services[name]["healthcheck"], name


def test_every_queue_a_task_is_routed_to_has_a_worker_of_its_own(app_services):
    workers = {name: _worker_queues(s) for name, s in app_services.items()
               if name.startswith("worker-")}
    assert routed_queues() <= set().union(*workers.values())
    for name, service in app_services.items():
        if name.startswith("worker-"):
            command = " ".join(service["command"])
            assert "-Q $$WORKER_QUEUES" in command and "--concurrency 1" in command, name
    assert workers["worker-training"] == {"training"}  # one run at a time, never behind others
    assert workers["worker-ranking"] == {"ranking"}  # the fast loop never waits behind a scoring


def test_bin_up_starts_a_worker_for_every_queue_a_task_is_routed_to():
    up = (Path(__file__).resolve().parents[2] / "bin" / "up").read_text()
    served = {q for line in up.splitlines() if " -Q " in line
              for q in line.split(" -Q ")[1].split()[0].split(",")}
    assert routed_queues() <= served


def test_every_worker_replaces_a_child_a_task_left_above_its_memory_bound(app_services):
    """A fine-tune or a head fit on 100k items can leave a child holding gigabytes; Celery
    replaces such a child after the task (the bound is what docs/deployment.md states)."""
    for name, service in app_services.items():
        if name.startswith("worker-"):
            assert "--max-memory-per-child $$WORKER_MAX_MEMORY_KB" in " ".join(
                service["command"]), name
            assert 500_000 <= int(service["environment"]["WORKER_MAX_MEMORY_KB"]) <= 4_000_000
    up = (Path(__file__).resolve().parents[2] / "bin" / "up").read_text()
    workers = re.findall(r"exec celery -A annotator worker .*\\\n.*", up)
    assert len(workers) == 3
    assert all("--max-memory-per-child " in line for line in workers)


def test_each_app_service_has_its_own_volume_and_shares_only_db_redis_and_the_object_store(
    compose, app_services
):
    volumes = {name: [v.split(":")[0] for v in service["volumes"]]
               for name, service in app_services.items()}
    for name, own in volumes.items():
        assert len(own) == 1 and own[0] in compose["volumes"], name
    assert len({own[0] for own in volumes.values()}) == len(volumes)  # no volume shared
    for name, service in app_services.items():
        assert {"db", "redis", "objectstore"} <= set(service["depends_on"]), name
        for shared in SHARED:
            assert service["depends_on"][shared]["condition"] == "service_healthy", name
    for name in set(app_services) - {"init"}:
        assert app_services[name]["depends_on"]["init"]["condition"] == (
            "service_completed_successfully"), name
    init = compose["services"]["init"]
    assert "migrate" in " ".join(init["command"]) and "entrypoint" not in init
    assert init["environment"]["ANNOTATOR_CREATE_BUCKET"] == "1"  # the entrypoint makes it


def test_the_example_env_keeps_artifacts_and_uploads_in_the_object_store():
    env = dict(line.split("=", 1) for line in (DOCKER / "env.example").read_text().splitlines()
               if line and not line.startswith("#"))
    assert env["ARTIFACT_STORAGE_BACKEND"] == "storages.backends.s3.S3Storage"
    assert '"endpoint_url": "http://objectstore:9000"' in env["ARTIFACT_STORAGE_OPTIONS"]
    assert {"SECRET_KEY", "POSTGRES_PASSWORD", "ALLOWED_HOSTS", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY"} <= set(env)


def test_the_check_runs_every_app_service_on_the_host_network_with_its_own_volume(
    app_services
):
    check = yaml.safe_load((DOCKER / "compose.check.yaml").read_text())["services"]
    assert set(check) == set(app_services)
    for name, service in check.items():
        assert service["network_mode"] == "host", name
        assert "volumes" not in service, name  # compose.yaml's own volume per service stays


def test_the_gpu_override_reserves_an_nvidia_device_for_training():
    override = yaml.safe_load((DOCKER / "compose.gpu.yaml").read_text())
    training = override["services"]["worker-training"]
    devices = training["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "cu" in training["build"]["args"]["TORCH_INDEX"]


def test_the_dockerfile_takes_its_base_and_index_from_arguments_and_runs_as_a_user():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    code = "\n".join(line for line in dockerfile.splitlines() if not line.startswith("#"))
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", code, re.M)
    assert re.findall(r"^FROM .*", code, re.M) == ["FROM ${BASE_IMAGE}"]
    assert "download.pytorch.org" not in code  # torch from the index pip is configured with
    assert 'ARG TORCH_INDEX=""' in code and "torch==$TORCH_VERSION" in code
    assert re.search(r"^USER (?!root)\w+", code, re.M)
    assert re.search(r"^HEALTHCHECK .*", code, re.M)
    assert 'ENTRYPOINT ["docker/entrypoint.sh"]' in code
    entrypoint = (DOCKER / "entrypoint.sh").read_text()
    assert "python -m annotator.lib.readiness ${ANNOTATOR_CREATE_BUCKET:+--create-bucket}" in entrypoint


def test_the_build_context_is_only_what_the_image_needs():
    ignore = (DOCKER.parent / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("**")] == "**"  # everything out, then the sources back in
    kept = {line[1:] for line in ignore if line.startswith("!")}
    assert {"annotator/", "trainer/", "templates/", "docker/entrypoint.sh"} <= kept
    assert not {line for line in kept if line.startswith(("var", ".venv", "tests", "docker/wh"))}
