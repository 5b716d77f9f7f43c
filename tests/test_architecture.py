"""The package's shape.

* Imports: the ``import-linter`` contracts in ``pyproject.toml`` (layers, no circles, only the
  tracking layer imports mlflow), run as CI runs them (``lint-imports``), and run once more on a
  copy of the package with a planted fault each, so that a contract cannot pass by checking nothing.
* No function longer than :data:`MAX_FUNCTION_LINES` lines (``def`` line to last line).
* No block of more than :data:`MAX_REPEAT_LINES` lines written twice (within or across files),
  after dropping blank and comment-only lines and stripping indentation.

These two are read from the source with ``ast`` and also run on a planted fault.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MAX_FUNCTION_LINES = 80
MAX_REPEAT_LINES = 10

PACKAGE = "hubselect"
REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / PACKAGE
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


# ---------------------------------------------------------------- checkers (each returns problems)


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


def lint_imports(repo: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the package under ``repo`` with ``repo``'s contracts (no cache)."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", str(repo / "pyproject.toml")],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_no_function_is_over_80_lines():
    found = long_functions(ROOT)
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(found)


def test_no_block_of_over_10_lines_is_repeated():
    found = repeated_blocks(ROOT)
    assert not found, "\n".join(found)


# ---------------------------------------------------------------- the checks find planted faults


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    """A copy of the package's source under ``tmp_path/hubselect``, with the contracts beside it."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return Path(shutil.copytree(ROOT, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("__pycache__")))


def _append_function(path: Path, source: str) -> None:
    path.write_text(path.read_text() + "\n\n" + source + "\n")


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


LAYERS = "Each layer imports only the layers below it"
STEPS = "Steps sit on tracking and plots"
SCORES = "Scores sit on representations and divergences, which are independent"
MLFLOW = "Only the tracking layer imports mlflow"
CYCLES = "No import circle between the modules or packages of any one folder"
#: module, the import planted in a function there, and the contracts it breaks (an upward import
#: is also a circle, since the layer above already imports the one below)
PLANTED = [
    ("core/progress.py", "from hubselect import options", {LAYERS, CYCLES}),
    ("pipeline/tracking/runs.py", "from hubselect.pipeline.steps import common", {STEPS, CYCLES}),
    ("scoring/divergence/terms.py", "from hubselect.scoring.represent import terms", {SCORES}),
    ("selection/policy.py", "import mlflow", {MLFLOW}),
    ("data/refs.py", "from hubselect.data import catalog", {CYCLES}),
]


def broken(stdout: str) -> set[str]:
    """The names of the contracts ``lint-imports`` reports broken."""
    return {line[:-len(" BROKEN")] for line in stdout.splitlines() if line.endswith(" BROKEN")}


@pytest.mark.parametrize(("module", "statement", "contracts"), PLANTED, ids=[p[0] for p in PLANTED])
def test_each_contract_breaks_on_a_planted_import(copy, module, statement, contracts):
    _append_function(copy / module, f"def planted():\n    {statement}\n")
    result = lint_imports(copy.parent)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken(result.stdout) == contracts


def test_every_contract_is_planted():
    text = (REPO / "pyproject.toml").read_text()
    names = {line.split('"')[1] for line in text.splitlines() if line.startswith("name = ")}
    assert names - {"hubselect"} == set().union(*(p[2] for p in PLANTED))


def test_checker_finds_a_long_function(copy):
    body = "".join(f"    x{i} = {i}\n" for i in range(80))
    _append_function(copy / "core" / "cache.py", f"def planted():\n{body}")
    found = [f for f in long_functions(copy) if " planted " in f]
    assert found == [f"{copy / 'core' / 'cache.py'}:{_line_of(copy / 'core' / 'cache.py', 'def planted():')} planted (81 lines)"]


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
