"""The layout's boundaries (docs/architecture.md), read from the source with `ast`.

Imports are counted wherever they are written: at the top of a module and inside
functions alike (a function-level import is still a dependency, only a later one).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEB_FRAMEWORKS = {"django", "rest_framework", "drf_spectacular", "celery", "django_celery_beat"}
ORM_WRITES = {"save", "create", "bulk_create", "bulk_update", "delete", "get_or_create",
              "update_or_create", "select_for_update"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("annotator", "trainer"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imported_names(module: str, path: Path) -> list[str]:
    """Every dotted name `module` imports, module-level or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.extend(f"{base}.{alias.name}" for alias in node.names)
            names.append(base)
    return names


def _own(name: str) -> str | None:
    """The module of this project that `name` refers to (the longest matching prefix)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        targets = {_own(name) for name in _imported_names(module, path)}
        graph[module] = {t for t in targets if t and t != module}
    return graph


GRAPH = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _in(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _edges(source_prefixes: tuple, target_prefixes: tuple) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in GRAPH.items() if _in(a, *source_prefixes)
                  for b in targets if _in(b, *target_prefixes))


def _selectors() -> list[str]:
    return sorted(m for m in MODULES if m.startswith("annotator.selectors"))


def test_the_graph_reads_every_module():
    assert {"annotator.selectors.queue", "annotator.services.labeling", "annotator.tasks",
            "trainer.predict"} <= set(GRAPH)
    assert "annotator.selectors.queue" in GRAPH["annotator.services.labeling"]  # it sees edges


def test_no_import_circle_counting_function_level_imports():
    assert _cycles(GRAPH) == []


def test_trainer_imports_neither_django_nor_annotator():
    offending = []
    for module, path in MODULES.items():
        if not module.startswith("trainer"):
            continue
        for name in _imported_names(module, path):
            top = name.split(".")[0]
            if top in WEB_FRAMEWORKS or top == "annotator":
                offending.append(f"{module} imports {name}")
    assert offending == []


def test_the_app_and_the_trainer_import_no_bench_and_no_tests():
    offending = [f"{module} imports {name}" for module, path in MODULES.items()
                 for name in _imported_names(module, path)
                 if name.split(".")[0] in ("bench", "tests")]
    assert offending == []


def test_selectors_import_no_services_views_tasks_or_queueing():
    assert _edges(tuple(_selectors()), ("annotator.services", "annotator.views",
                                        "annotator.tasks", "annotator.queueing",
                                        "annotator.ml.serving")) == []


def test_selectors_do_not_write():
    """A heuristic: no ORM write method is called in a selectors module (dict and set
    `.update` are fine; a queryset's `.update` is called on `...objects...`)."""
    writes = []
    for module in _selectors():
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver = ast.unparse(node.func.value)
            if node.func.attr in ORM_WRITES or (
                    node.func.attr == "update" and "objects" in receiver):
                writes.append(f"{module}:{node.lineno} {receiver}.{node.func.attr}(...)")
    assert writes == []


def test_only_the_celery_worker_imports_tasks():
    """Tasks are the outer layer: services enqueue by name (annotator.queueing)."""
    assert _edges(("annotator",), ("annotator.tasks",)) == []


def test_services_import_no_views():
    assert _edges(("annotator.services", "annotator.ml", "annotator.queueing"),
                  ("annotator.views", "annotator.api", "annotator.urls", "annotator.forms",
                   "annotator.admin")) == []


# the Django entry points and the modules every layer shares; everything else has a package
TOP_LEVEL = {"annotator.models", "annotator.permissions", "annotator.queueing", "annotator.tasks",
             "annotator.admin", "annotator.settings", "annotator.wsgi", "annotator.celery",
             "annotator.apps"}


def test_the_top_level_holds_only_entry_points_and_cross_cutting_modules():
    loose = sorted(module for module, path in MODULES.items() if _in(module, "annotator")
                   and module.count(".") == 1
                   and path.name != "__init__.py" and module not in TOP_LEVEL)
    assert loose == []


def test_pure_helpers_and_the_model_store_import_no_service_selector_view_or_api():
    assert _edges(("annotator.lib",), ("annotator.models", "annotator.permissions",
                                      "annotator.ml", "annotator.queueing")) == []
    assert _edges(("annotator.lib", "annotator.ml"),
                  ("annotator.selectors", "annotator.services", "annotator.views",
                   "annotator.api", "annotator.urls", "annotator.forms", "annotator.tasks",
                   "annotator.admin")) == []


def test_the_api_imports_no_html_view():
    """(It may share a form's field rules: forms hold validation, not pages.)"""
    assert _edges(("annotator.api",), ("annotator.views", "annotator.urls", "annotator.admin")) == []


def test_no_private_name_is_imported_from_another_module():
    private = [f"{module} imports {name}" for module, path in MODULES.items()
               for name in _imported_names(module, path)
               if _own(name) not in (None, module) and _own(name) != name
               and name.rpartition(".")[2].startswith("_")]
    assert private == []


def test_the_rule_above_sees_a_private_import():
    tree_text = "from annotator.ml.artifacts import _hidden\n"
    path = ROOT / "tests" / "_private_import_probe.py"
    try:
        path.write_text(tree_text, encoding="utf-8")
        names = _imported_names("annotator.views.probe", path)
    finally:
        path.unlink()
    assert "annotator.ml.artifacts._hidden" in names and _own(names[0]) == "annotator.ml.artifacts"


def test_the_api_has_one_access_check():
    """api.access.api_project: every other API module gets its project through it."""
    found = []
    for module, path in MODULES.items():
        if _in(module, "annotator.api") and module != "annotator.api.access":
            text = path.read_text(encoding="utf-8")
            if "get_object_or_404(Project" in text or "PermissionDenied(\"you are not" in text:
                found.append(module)
    assert found == []


def test_every_route_names_a_project_project_id():
    from django.urls import URLPattern, URLResolver, get_resolver

    def routes(resolver, prefix=""):
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                yield from routes(entry, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield prefix + str(entry.pattern)

    found = [route for route in routes(get_resolver()) if "projects/<" in route
             and not route.split("projects/<", 1)[1].startswith("int:project_id>")]
    assert found == []
    assert not [route for route in routes(get_resolver()) if "_pk>" in route]


def test_no_file_is_over_500_lines():
    """models.py (one cohesive file of tables) and migrations aside."""
    long = []
    for package in ("annotator", "trainer", "bench"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts or path.name == "models.py":
                continue
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > 500:
                long.append(f"{path.relative_to(ROOT)}: {lines}")
    assert long == []


def test_views_import_no_private_name_of_another_view():
    private = []
    for module, path in MODULES.items():
        if not module.startswith("annotator.views"):
            continue
        for name in _imported_names(module, path):
            last = name.rpartition(".")[2]
            if name.startswith("annotator.views") and last.startswith("_"):
                private.append(f"{module} imports {name}")
    assert private == []


def _enqueued_names() -> list[tuple[str, str]]:
    found = []
    for module, path in MODULES.items():
        if module == "annotator.queueing":  # where enqueue passes the name on
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("enqueue", "enqueue_on_commit") and node.args):
                first = node.args[0]
                assert isinstance(first, ast.Constant), f"{module}: enqueue a literal name"
                found.append((module, first.value))
    return found


def test_every_task_a_service_enqueues_is_registered_under_that_name():
    from annotator import tasks
    from annotator.queueing import task

    enqueued = _enqueued_names()
    assert len(enqueued) >= 10  # the scan finds them
    registered = {getattr(tasks, name).name for name in dir(tasks)
                  if hasattr(getattr(tasks, name), "delay")}
    assert {name for _, name in enqueued} <= registered
    for _, name in enqueued:
        assert task(name).name == name


@pytest.mark.parametrize("name", ["score_pool_task", "train_project_task", "import_file_task",
                                  "head_rerank_task", "deliver_webhook_task"])
def test_task_names_stay_module_dot_function(name):
    """Routes, beat and queued messages use these strings; queueing imports by them."""
    from annotator import tasks

    assert getattr(tasks, name).name == f"annotator.tasks.{name}"
