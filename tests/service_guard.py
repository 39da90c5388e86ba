"""A pytest plugin: where CI demands the real services, a skipped service test fails.

Browser tests skip when Chromium is missing and PostgreSQL tests skip on SQLite, which is
right on a laptop (`bin/test`) and wrong in CI: a missing Chromium or a DATABASE_URL that
silently fell back to SQLite would turn the tests that matter into "s" and a green run.
With ANNOTATOR_REQUIRE_SERVICES set (`.ci/run` sets it for its PostgreSQL pass), every
skip of a test marked with one of SERVICE_MARKERS is reported as a failure instead, except a
skip whose reason starts with CPU_SKIP: the service is there, but a test-only binary was seen
to die on this machine's CPU (tests/annotator/test_pgvector.py); the summary lists those.

No Django here, so the plugin can be tested in a plain pytest subprocess
(tests/test_service_guard.py); tests/conftest.py loads it.
"""

import os

import pytest

ENV = "ANNOTATOR_REQUIRE_SERVICES"
SERVICE_MARKERS = ("browser", "postgres")
HINTS = {
    "browser": "install Chromium at /usr/bin/chromium (apt-get install chromium chromium-driver)",
    "postgres": "set DATABASE_URL to a postgres:// URL",
}
CPU_SKIP = "this machine's CPU cannot run"  # a skip reason the guard lets pass (see above)
_guarded = pytest.StashKey[list]()  # node ids whose skip was turned into a failure
_cpu_skips = pytest.StashKey[list]()  # node ids skipped for CPU_SKIP


def services_required() -> bool:
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, lineno, "Skipped: why")
        longrepr = longrepr[2]
    return str(longrepr).removeprefix("Skipped: ")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report: pytest.TestReport = yield
    if not report.skipped or hasattr(report, "wasxfail") or not services_required():
        return report
    markers = [name for name in SERVICE_MARKERS if item.get_closest_marker(name)]
    if not markers:
        return report
    if _skip_reason(report).startswith(CPU_SKIP):
        item.config.stash.setdefault(_cpu_skips, []).append(item.nodeid)
        return report
    report.outcome = "failed"
    report.longrepr = (
        f"{ENV}={os.environ[ENV]}: this test is marked {', '.join(markers)} and must run here, "
        f"but it was skipped ({_skip_reason(report)}); "
        + "; ".join(HINTS[name] for name in markers)
    )
    item.config.stash.setdefault(_guarded, []).append(item.nodeid)
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    cpu = config.stash.get(_cpu_skips, [])
    if cpu:
        terminalreporter.section(f"{ENV}: service tests this CPU cannot run", yellow=True)
        for nodeid in cpu:
            terminalreporter.line(f"  {nodeid}")
    failed = config.stash.get(_guarded, [])
    if failed:
        terminalreporter.section(f"{ENV}: service tests that skipped", red=True, bold=True)
        terminalreporter.line(
            f"{len(failed)} test(s) needing {' or '.join(SERVICE_MARKERS)} were skipped "
            "and count as failures:"
        )
        for nodeid in failed:
            terminalreporter.line(f"  {nodeid}")
