"""The suite proves itself: where CI demands the real services, a skipped service test fails.

Each case runs a small throwaway test module in a plain pytest subprocess with the plugin
tests/conftest.py loads (tests.service_guard), with and without ANNOTATOR_REQUIRE_SERVICES.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import service_guard

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import pytest

@pytest.mark.browser
@pytest.mark.skipif(True, reason="/usr/bin/chromium missing")
def test_drives_chromium():
    pass

@pytest.mark.postgres
def test_needs_postgresql():
    pytest.skip("needs PostgreSQL (set DATABASE_URL to a postgres:// URL)")

@pytest.fixture
def onnx():
    pytest.skip("onnxruntime not installed")

def test_an_optional_extra(onnx):
    pass

@pytest.mark.postgres
@pytest.mark.xfail(reason="known", run=False)
def test_a_known_failure():
    pass

def test_plain():
    pass
"""


def _pytest(tmp_path: Path, source: str, require: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(textwrap.dedent(source))
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    browser: b\n    postgres: p\n"
    )  # its own rootdir: not this project's ini, conftest or Django
    env = {k: v for k, v in os.environ.items() if k not in (service_guard.ENV, "PYTEST_ADDOPTS")}
    if require is not None:
        env[service_guard.ENV] = require
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:django",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.service_guard",
            "-rA",
            "--strict-markers",
            "test_probe.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ci_fails_when_a_browser_or_postgres_test_skips(tmp_path):
    run = _pytest(tmp_path, PROBE, require="1")
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "ANNOTATOR_REQUIRE_SERVICES=1: this test is marked browser and must run here" in out
    assert "skipped (/usr/bin/chromium missing)" in out and "apt-get install chromium" in out
    assert "this test is marked postgres and must run here" in out
    assert "set DATABASE_URL to a postgres:// URL" in out
    assert "ANNOTATOR_REQUIRE_SERVICES: service tests that skipped" in out
    assert "ERROR test_probe.py::test_drives_chromium" in out  # skipped at setup (skipif)
    assert "FAILED test_probe.py::test_needs_postgresql" in out  # skipped in the body
    # skips of tests that need no service, and expected failures, stay what they were
    assert "SKIPPED [1] test_probe.py" in out and "onnxruntime not installed" in out
    assert "XFAIL" in out and "test_probe.py::test_a_known_failure" in out
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed, 1 error" in out


def test_a_skip_for_this_machines_cpu_passes_and_is_listed(tmp_path):
    source = f"""
    import pytest

    @pytest.mark.postgres
    def test_needs_a_binary_this_cpu_lacks():
        pytest.skip("{service_guard.CPU_SKIP} the bundled pgvector (SIGILL)")

    @pytest.mark.postgres
    def test_says_cpu_later():
        pytest.skip("PostgreSQL missing; {service_guard.CPU_SKIP} nothing")
    """
    run = _pytest(tmp_path, source, require="1")
    out = run.stdout + run.stderr
    assert "1 failed, 1 skipped" in out  # only a reason that starts with it
    assert "service tests this CPU cannot run" in out
    assert "test_probe.py::test_needs_a_binary_this_cpu_lacks" in out


@pytest.mark.parametrize("require", [None, "0"])
def test_local_runs_may_skip_service_tests(tmp_path, require):
    run = _pytest(tmp_path, PROBE, require=require)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "1 passed, 3 skipped, 1 xfailed" in out
    assert "must run here" not in out


def test_ci_passes_when_the_service_tests_run(tmp_path):
    source = """
    import pytest

    @pytest.mark.browser
    def test_drives_chromium():
        pass

    @pytest.mark.postgres
    def test_needs_postgresql():
        pass
    """
    run = _pytest(tmp_path, source, require="1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


def test_the_project_conftest_loads_the_guard(request):
    assert request.config.pluginmanager.has_plugin("tests.service_guard")
