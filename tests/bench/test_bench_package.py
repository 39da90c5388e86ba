"""bench/ is a package of scripts run as `python -m bench.<name>` from the repository root."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem != "__init__")


def test_bench_is_a_package_of_modules():
    assert (ROOT / "bench" / "__init__.py").is_file()
    assert "labeling_load" in MODULES and "support" in MODULES


@pytest.mark.slow
@pytest.mark.parametrize("name", MODULES)
def test_every_bench_module_imports_and_parses_help(name):
    done = subprocess.run([sys.executable, "-m", f"bench.{name}", "--help"], cwd=ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_no_bench_file_changes_sys_path():
    offending = [p.name for p in sorted((ROOT / "bench").glob("*.py"))
                 if "sys.path.insert" in p.read_text(encoding="utf-8")]
    assert offending == []
