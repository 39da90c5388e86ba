"""Files on disk are their user's alone: the var folder, the SQLite database with its -wal and
-shm, uploads, model artifacts and the broker's messages are made owner-only whatever the
umask of the shell that started the process, and a var folder an older version left
world-readable is closed at start. Asked of fresh processes with a permissive umask 022."""

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

WRITE_EVERYTHING = """
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from annotator.celery import app
from annotator.models import Project
from annotator.services.importing import import_job_upload

project = Project.objects.create(name="files")
job = import_job_upload(project=project, upload=SimpleUploadedFile("r.csv", b"text\\nhello\\n"))
print("upload", storages["artifacts"].path(job.upload_path))
print("artifact", storages["artifacts"].path(
    storages["artifacts"].save("projects/1/v1/config.json", ContentFile(b"{}"))))
app.send_task("annotator.tasks.refresh_insight_task", args=[project.pk])  # a broker message
with connection.cursor() as cursor:
    cursor.execute("PRAGMA journal_mode")
    print("journal", cursor.fetchone()[0])
"""


def _run(var_dir: Path, args: list[str]) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(var_dir)),
           "ANNOTATOR_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "annotator.settings",
           "SECRET_KEY": secrets.token_urlsafe(50), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300, preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, result.stderr
    return result


def _open_to_others(var_dir: Path) -> list[str]:
    paths = [var_dir, *var_dir.rglob("*")]
    return [f"{p} {stat.filemode(p.stat().st_mode)}" for p in paths
            if not p.is_symlink() and p.stat().st_mode & 0o077]


@pytest.mark.slow
def test_everything_the_site_writes_under_var_is_owner_only(tmp_path):
    var_dir = tmp_path / "var"
    _run(var_dir, ["manage.py", "migrate", "--noinput", "-v", "0"])
    written = _run(var_dir, ["manage.py", "shell", "-c", WRITE_EVERYTHING]).stdout
    assert "journal wal" in written
    made = dict(line.split(" ", 1) for line in written.splitlines()
                if line.startswith(("upload ", "artifact ")))
    for kind in ("upload", "artifact"):
        assert Path(made[kind]).is_relative_to(var_dir) and Path(made[kind]).exists()
    assert (var_dir / "annotator.sqlite3").exists()
    assert any((var_dir / "broker" / "queue").iterdir())  # the message was written
    assert _open_to_others(var_dir) == []


def test_a_world_readable_var_folder_and_database_are_closed_at_start(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir(mode=0o755)
    var_dir.chmod(0o755)
    for name in ("annotator.sqlite3", "annotator.sqlite3-wal", "annotator.sqlite3-shm"):
        (var_dir / name).touch()
        (var_dir / name).chmod(0o644)
    _run(var_dir, ["-c", "import annotator.settings"])
    assert stat.S_IMODE(var_dir.stat().st_mode) == 0o700
    for name in ("annotator.sqlite3", "annotator.sqlite3-wal", "annotator.sqlite3-shm"):
        assert stat.S_IMODE((var_dir / name).stat().st_mode) == 0o600
