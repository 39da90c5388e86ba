"""The "artifacts" storage, where model versions live: one folder per version (and attempt),
written once by training, read by pool ranking, serving, label review and downloads.

`model_version_local_path` gives a local folder to load a version from (the file system
storage in place; other storages copied once into VAR_DIR/model-cache).
"""

import json
import shutil
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages

from annotator.models import ModelVersion


def _artifacts():
    return storages["artifacts"]


def artifact_files(version: ModelVersion) -> list[str]:
    """Paths (relative to the version folder) of every stored file of a version."""
    storage, found = _artifacts(), []

    def walk(rel: str) -> None:
        dirs, files = storage.listdir(f"{version.artifact_path}/{rel}".rstrip("/"))
        found.extend(f"{rel}{name}" for name in files)
        for name in dirs:
            walk(f"{rel}{name}/")

    walk("")
    return sorted(found)


def model_version_config(version: ModelVersion) -> dict:
    """The version's config.json (architecture, layers, labels); {} where it cannot be read."""
    try:
        with _artifacts().open(f"{version.artifact_path}/config.json") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def model_version_store(folder: Path, prefix: str) -> None:
    """Copy into a prefix no other attempt uses (storage.save would rename a clash)."""
    storage = _artifacts()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(path, "rb") as fh:
            storage.save(f"{prefix}/{path.relative_to(folder).as_posix()}", File(fh))


def model_version_local_path(version: ModelVersion) -> Path:
    """A local folder with the version's save_pretrained files (for loading models).

    The file system storage is used in place; other storages are copied once into
    VAR_DIR/model-cache.
    """
    storage = _artifacts()
    try:
        return Path(storage.path(version.artifact_path))
    except NotImplementedError:
        target = Path(settings.VAR_DIR) / "model-cache" / version.artifact_path
        if not (target / "config.json").exists():
            for rel in artifact_files(version):
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                with storage.open(f"{version.artifact_path}/{rel}") as src, open(
                    target / rel, "wb"
                ) as dst:
                    shutil.copyfileobj(src, dst)
        return target


class _Pipe:
    """Write-only buffer for zipfile: the response drains it after each file chunk."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def model_version_zip_stream(version: ModelVersion):
    """The version's files as a zip, streamed. Zip64 for every entry: the size of a file is not
    known before it is streamed, and without zip64 one over 2 GiB would abort the download."""
    storage, pipe = _artifacts(), _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                         allowZip64=True) as archive:
        for rel in artifact_files(version):
            src = storage.open(f"{version.artifact_path}/{rel}")
            with src, archive.open(rel, "w", force_zip64=True) as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                    yield pipe.drain()
    yield pipe.drain()
