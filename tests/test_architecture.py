"""The package's shape, read from its source with ``ast`` (nothing of hubselect is imported).

* Imports: no circle between modules and no upward import by :data:`LAYERS` (a module may import
  its own layer or a lower one). Every import counts, inside functions too; ``from a.b import c``
  is an edge to ``a.b.c`` when that is a module, else to ``a.b``. The one allowance: importing a
  submodule is an edge to that submodule only, not to the package ``__init__`` that Python also
  runs first, so a package ``__init__`` may re-export its own submodules. A submodule that imports
  its own package (``from hubselect.hub import f`` inside ``hubselect/hub/b.py``) while that
  ``__init__`` imports it back is a circle and is reported.
* No function longer than :data:`MAX_FUNCTION_LINES` lines (``def`` line to last line).
* No block of more than :data:`MAX_REPEAT_LINES` lines written twice (within or across files),
  after dropping blank and comment-only lines and stripping indentation.

Each checker is also run on a temporary copy of the package with one planted fault, so none of
them can pass by finding nothing.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import shutil
from pathlib import Path

import pytest

#: Layer -> module patterns, relative to the package. ``__init__`` is the package's own
#: ``hubselect/__init__.py``; any other pattern covers a module and everything under it
#: (``hub`` = ``hubselect.hub`` and ``hubselect.hub.*``), with ``*`` inside one name segment.
#: Data flows up this table: hub -> represent -> divergence -> selection -> training ->
#: evaluation -> tracking, with steps/ and the CLI on top.
LAYERS: dict[int, list[str]] = {
    0: ["__init__", "errors", "cache", "progress", "labelnames", "executor", "plots"],
    # modeling resolves (from the Hub, with hub's retries) and loads the pretrained encoder that
    # represent and training both use
    1: ["hub", "modeling"],
    2: ["represent"],
    3: ["divergence", "scoring"],
    4: ["selection", "prior", "learned_policy", "select*", "polic*"],
    5: ["zeroshot", "training", "model_folder"],
    6: ["evaluation", "labelfree", "metric*", "champion", "transfer"],
    7: ["tracking"],
    8: ["steps", "benchmark", "options"],
    9: ["cli", "__main__"],
}
MAX_FUNCTION_LINES = 80
MAX_REPEAT_LINES = 10

PACKAGE = "hubselect"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


# ---------------------------------------------------------------- reading the package


def modules(root: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` of every ``.py`` file under ``root`` (the package folder)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_package(name: str, files: dict[str, Path]) -> bool:
    return files[name].name == "__init__.py"


def _imported(node: ast.AST, name: str, files: dict[str, Path]) -> list[tuple[str, int]]:
    """``(module, line)`` of the package's modules that one import statement of ``name`` reaches."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            here = name if _is_package(name, files) else name.rpartition(".")[0]
            up = here.split(".")[: len(here.split(".")) - (node.level - 1)]
            base = ".".join([*up, base] if base else up)
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
    else:
        return []
    reached = []
    for target in targets:
        while target and target not in files:  # `import hubselect.hub.hf as x` -> the longest known module
            target = target.rpartition(".")[0]
        if target:
            reached.append((target, node.lineno))
    return reached


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """``{module: {imported module: first line}}`` over every import, inside functions too."""
    files = modules(root)
    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        edges = graph.setdefault(name, {})
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target, line in _imported(node, name, files):
                if target != name:
                    edges.setdefault(target, line)
    return graph


# ---------------------------------------------------------------- checkers (each returns problems)


def layer_of(module: str) -> int | None:
    """The layer of a dotted module name; raises ``ValueError`` when two layers claim it."""
    rel = module.split(".")[1:]
    hits = set()
    for layer, patterns in LAYERS.items():
        for pattern in patterns:
            if pattern == "__init__":
                hit = not rel
            else:
                segments = pattern.split(".")
                hit = len(rel) >= len(segments) and all(map(fnmatch.fnmatchcase, rel, segments))
            if hit:
                hits.add(layer)
    if len(hits) > 1:
        raise ValueError(f"{module} matches layers {sorted(hits)} of LAYERS: make its pattern unambiguous")
    return hits.pop() if hits else None


def layer_problems(graph: dict[str, dict[str, int]], files: dict[str, Path]) -> list[str]:
    """Modules missing from :data:`LAYERS`, and imports that reach a higher layer."""
    problems = []
    for module in sorted(graph):
        try:
            layer = layer_of(module)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if layer is None:
            problems.append(f"{module} ({files[module]}) is in no layer: add it to the layer table "
                            "(LAYERS in tests/test_architecture.py)")
            continue
        for target, line in sorted(graph[module].items()):
            target_layer = layer_of(target)
            if target_layer is not None and target_layer > layer:
                problems.append(f"upward import: {module} (layer {layer}) imports {target} "
                                f"(layer {target_layer}) at {files[module]}:{line}")
    return problems


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one module (Tarjan's algorithm)."""
    edges = {module: sorted(targets) for module, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_one_circle(sorted(c), edges) for c in components]


def _one_circle(component: list[str], edges: dict[str, list[str]]) -> list[str]:
    """A concrete circle ``a -> b -> ... -> a`` inside one strongly connected component."""
    inside, start = set(component), component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:  # breadth first: the shortest way back to the start
        nxt_frontier = []
        for node in frontier:
            for nxt in edges[node]:
                if nxt == start:
                    return [*paths[node], start]
                if nxt in inside and nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return component


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``file:line name (n lines)`` for every function or method longer than ``limit`` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path}:{node.lineno} {node.name} ({length} lines)")
    return found


def _normalised(path: Path) -> list[tuple[int, str]]:
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if text and not text.startswith("#"):
            lines.append((number, text))
    return lines


def repeated_blocks(root: Path, limit: int = MAX_REPEAT_LINES) -> list[str]:
    """Every block of more than ``limit`` normalised lines seen twice, naming both places.

    A window of ``limit + 1`` lines slides over each file; a run of overlapping repeated windows
    is reported once, with its length.
    """
    size = limit + 1
    first_seen: dict[bytes, tuple[Path, int]] = {}
    runs: dict[tuple, list] = {}  # last repeated window (first place, second place) -> [start lines, windows]
    numbers: dict[Path, list[int]] = {}  # normalised index -> line number, per file
    for path in sorted(root.rglob("*.py")):
        lines = _normalised(path)
        numbers[path] = [number for number, _ in lines]
        for i in range(len(lines) - size + 1):
            digest = hashlib.sha1("\n".join(t for _, t in lines[i:i + size]).encode()).digest()
            if digest not in first_seen:
                first_seen[digest] = (path, i)
                continue
            other, j = first_seen[digest]
            run = runs.pop((other, j - 1, path, i - 1), None)  # the run the previous window belongs to
            start = run[0] if run else (other, numbers[other][j], path, numbers[path][i])
            runs[(other, j, path, i)] = [start, run[1] + 1 if run else 1]
    return [f"{a}:{la} and {b}:{lb} repeat a block of {count + limit} lines"
            for (a, la, b, lb), count in sorted(runs.values(), key=lambda r: tuple(map(str, r[0])))]


# ---------------------------------------------------------------- the package as it is


def test_no_import_circle():
    found = cycles(import_graph(ROOT))
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_every_module_has_a_layer_and_no_import_runs_up():
    files = modules(ROOT)
    problems = layer_problems(import_graph(ROOT), files)
    assert not problems, "\n".join(problems)


def test_no_function_is_over_80_lines():
    found = long_functions(ROOT)
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(found)


def test_no_block_of_over_10_lines_is_repeated():
    found = repeated_blocks(ROOT)
    assert not found, "\n".join(found)


# ---------------------------------------------------------------- the checkers find planted faults


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    """A copy of the package's source under ``tmp_path/hubselect``."""
    return Path(shutil.copytree(ROOT, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "data")))


def _append_function(path: Path, source: str) -> None:
    path.write_text(path.read_text() + "\n\n" + source + "\n")


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_checker_finds_a_circle_and_an_upward_import(copy):
    _append_function(copy / "errors.py", "def planted():\n    from hubselect.cli import main\n    return main\n")
    files = modules(copy)
    graph = import_graph(copy)
    assert any(c[0] == c[-1] and "hubselect.errors" in c and "hubselect.cli" in c for c in cycles(graph))
    line = _line_of(copy / "errors.py", "from hubselect.cli import main")
    upward = [p for p in layer_problems(graph, files) if p.startswith("upward import: hubselect.errors ")]
    assert upward == [f"upward import: hubselect.errors (layer 0) imports hubselect.cli (layer 9) at "
                      f"{copy / 'errors.py'}:{line}"]


def test_checker_follows_relative_and_submodule_imports(copy):
    (copy / "hub" / "planted.py").write_text("from ..steps import common\nfrom . import tasks\n")
    graph = import_graph(copy)
    assert set(graph["hubselect.hub.planted"]) == {"hubselect.steps.common", "hubselect.hub.tasks"}
    assert any("hubselect.hub.planted (layer 1) imports hubselect.steps.common (layer 8)" in p
               for p in layer_problems(graph, modules(copy)))


def test_a_package_init_reexporting_its_submodules_is_no_circle(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "hub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "hub" / "__init__.py").write_text("from hubselect.hub.a import f\n")
    (pkg / "hub" / "a.py").write_text("from hubselect.hub.b import g\n\ndef f():\n    return g\n")
    (pkg / "hub" / "b.py").write_text("def g():\n    return 1\n")
    assert cycles(import_graph(pkg)) == []
    (pkg / "hub" / "b.py").write_text("from hubselect.hub import f\n")  # b -> hub/__init__ -> a -> b
    assert cycles(import_graph(pkg)) == [["hubselect.hub", "hubselect.hub.a", "hubselect.hub.b",
                                             "hubselect.hub"]]


def test_checker_names_a_module_missing_from_the_layer_table(copy):
    (copy / "mystery.py").write_text('"""Nobody placed me."""\n')
    problems = layer_problems(import_graph(copy), modules(copy))
    assert any(p.startswith("hubselect.mystery (") and "add it to the layer table" in p for p in problems)


def test_layer_patterns_cover_subpackages_and_stay_in_one_segment():
    assert layer_of("hubselect") == 0 and layer_of("hubselect.hub.tasks") == 1
    assert layer_of("hubselect.selection") == layer_of("hubselect.policies") == 4
    assert layer_of("hubselect.benchmark.metrics") == 8 and layer_of("hubselect.metrics.accuracy") == 6
    assert layer_of("hubselect.nowhere") is None


def test_checker_finds_a_long_function(copy):
    body = "".join(f"    x{i} = {i}\n" for i in range(80))
    _append_function(copy / "cache.py", f"def planted():\n{body}")
    found = [f for f in long_functions(copy) if " planted " in f]
    assert found == [f"{copy / 'cache.py'}:{_line_of(copy / 'cache.py', 'def planted():')} planted (81 lines)"]


def test_checker_finds_a_real_block_written_twice(copy):
    """The longest real function of the package, pasted into a new module, is reported with both places."""
    longest = max((node for path in sorted(ROOT.rglob("*.py"))
                   for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.FunctionDef)), key=lambda n: n.end_lineno - n.lineno)
    home = next(p for p in sorted(copy.rglob("*.py")) if f"def {longest.name}(" in p.read_text())
    source = "\n".join(home.read_text().splitlines()[longest.lineno - 1:longest.end_lineno])
    (copy / "zz_pasted.py").write_text(f'"""A pasted copy."""\n\n\n{source}\n')
    found = [f for f in repeated_blocks(copy) if str(copy / "zz_pasted.py") in f]
    assert any(f.startswith(f"{home}:") and f" and {copy / 'zz_pasted.py'}:" in f for f in found), found


def test_checker_ignores_blanks_comments_and_indentation_but_not_short_blocks(tmp_path):
    block = [f"value_{i} = compute({i})" for i in range(11)]
    (tmp_path / "a.py").write_text("\n".join(block) + "\n")
    (tmp_path / "b.py").write_text("def f():\n" + "\n\n    # note\n".join(f"    {line}" for line in block) + "\n")
    assert repeated_blocks(tmp_path) == [f"{tmp_path / 'a.py'}:1 and {tmp_path / 'b.py'}:2 repeat a block of 11 lines"]
    (tmp_path / "b.py").write_text("\n".join(block[:10]) + "\n")
    assert repeated_blocks(tmp_path) == []
