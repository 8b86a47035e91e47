"""The package's shape: imports point one way, the pure packages never load TensorFlow, files stay short."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "edgekit"
PURE_PACKAGES = ("ir", "costmodel", "channels")
# The planner's pure half: everything but the modules that build or train tf_keras models.
PURE_PLANNER_MODULES = ("types", "netadapt", "choice", "search", "plan_json")
HEAVY_PREFIXES = ("tensorflow", "tf_keras", "keras", "ai_edge_litert", "tflite_micro", "tensorflow_model_optimization")
MAX_TOP_LEVEL_MODULES = 12
MAX_FILE_LINES = 450


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _edgekit_imports(path: Path, modules: set[str]) -> set[str]:
    """edgekit modules `path` imports anywhere in its body (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    files = {_module_name(p, package): p for p in package.rglob("*.py")}
    modules = set(files)
    graph = {}
    for name, path in files.items():
        # Every edge counts, a package's re-exports of its submodules too: a submodule that imports its own
        # package (`from edgekit import x`, `from edgekit.tasks import metrics`) then closes a cycle.
        graph[name] = _edgekit_imports(path, modules) - {name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_cycle_finder_finds_a_planted_cycle(tmp_path):
    pkg = tmp_path / "edgekit"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from edgekit.sub.b import thing\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from edgekit import a\n")
    (pkg / "c.py").write_text("import edgekit.a\n")
    assert find_cycles(import_graph(pkg)) == [["edgekit.a", "edgekit.sub.b"]]
    # a submodule importing its own package closes a cycle with the package's re-export
    (pkg / "sub" / "__init__.py").write_text("from edgekit.sub.c2 import y\n")
    (pkg / "sub" / "c2.py").write_text("from edgekit.sub import b\n")
    assert ["edgekit.sub", "edgekit.sub.c2"] in find_cycles(import_graph(pkg))


def test_no_import_cycles_between_edgekit_modules():
    assert find_cycles(import_graph()) == []


def test_nothing_inside_edgekit_imports_the_facade():
    importers = sorted(m for m, deps in import_graph().items() if "edgekit.api" in deps)
    assert importers == []


def test_top_level_stays_small_and_files_short():
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    long_files = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
                  if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert long_files == {}


def _pure_modules() -> list[str]:
    names = [_module_name(p) for pkg in PURE_PACKAGES for p in (PACKAGE / pkg).rglob("*.py")]
    return sorted(names + [f"edgekit.planner.{m}" for m in PURE_PLANNER_MODULES])


def test_pure_packages_load_no_tensorflow_keras_litert_or_tflm():
    code = (
        "import importlib, sys\n"
        f"for name in {_pure_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY_PREFIXES!r})\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent)
    assert out.stdout.strip() == ""


def test_the_purity_check_sees_a_heavy_import():
    module = "edgekit.costmodel.analysis"
    """The same probe reports tensorflow when it is imported beside a pure module (the check can fail)."""
    code = f"import {module}, sys\nimport tensorflow\nprint('tensorflow' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent)
    assert out.stdout.strip().endswith("True")


def _heavy_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        found |= {n for n in names if n.split(".")[0] in HEAVY_PREFIXES}
    return found


def test_nothing_the_pure_packages_reach_imports_a_runtime_even_lazily():
    """Statically, function-level imports included: what ir/, costmodel/, channels/ and the pure planner reach
    through edgekit imports never imports TensorFlow, Keras, LiteRT or TFLM (a lazy import is one call away)."""
    graph = import_graph()
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    seen, todo = set(), list(_pure_modules())
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    offenders = {m: sorted(_heavy_imports(files[m])) for m in sorted(seen) if _heavy_imports(files[m])}
    assert offenders == {}
