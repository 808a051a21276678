"""The layers of docs/architecture.md, checked on the source: imports go downward only, no job
imports another, nothing but the executable imports the command line, imports sit at the top of
modules except for optional dependencies, and every module and function stays short."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dealscore"
BASE = {"errors", "settings", "progress", "summary", "formatting"}  # small helpers beside schemas
# Everything a job may use; the layers above it add the jobs and each other.
UNDER_JOBS = {
    "explain",
    "pipeline",
    "tracking",
    "io",
    "features",
    "model",
    "schemas",
    "synthetic",
    *BASE,
}
# What each layer may import from dealscore (its own layer always).
ALLOWED = {
    "schemas": {"errors"},
    "features": {"schemas", "errors", "formatting"},
    "model": {"features", "schemas", "errors", "formatting"},
    # Reasons in a seller's words: the model's credits, said with the features' names.
    "explain": {"model", "features", "schemas", *BASE},
    "synthetic": {"schemas", *BASE},
    "io": {"schemas", "features", "synthetic", *BASE},
    "pipeline": UNDER_JOBS - {"pipeline", "tracking"},
    "tracking": UNDER_JOBS - {"tracking", "synthetic"},
    "jobs": UNDER_JOBS,
    # A flow runs several jobs in order (score, monitor, train): the one place jobs meet.
    "flows": {"jobs", *UNDER_JOBS} - {"synthetic"},
    # What each command says as JSON (--json), from the jobs' and flows' results.
    "documents": {"flows", "jobs", *UNDER_JOBS} - {"features", "synthetic"},
    # The command line (Typer) sits on everything; only the executable imports it.
    "cli": {"documents", "terminal", "flows", "jobs", *UNDER_JOBS},
}
CLI_IMPORTED_BY = {"entry"}  # `dealscore` and `python -m dealscore` run entry.main
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60
# Imported inside a function on purpose: optional extras, and the fast `--version`.
SPARK_MODULES = ("session", "read", "contract", "route", "reference", "engine")
LAZY = {
    *((f"pipeline/spark/{module}.py", "pyspark") for module in SPARK_MODULES),
    ("jobs/score.py", "dealscore"),
    ("entry.py", "dealscore"),
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "dealscore" and node.level == 0:
            # `from dealscore import documents` imports the module dealscore.documents
            found += [
                (node, f"dealscore.{a.name}") for a in node.names if not a.name.startswith("_")
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node, node.module))
    return found


def _layer(path: Path) -> str:
    """The package under dealscore a module belongs to, or a top-level module's own name
    (terminal.py: "terminal")."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_downward_and_no_job_imports_another(path):
    layer = _layer(path)
    tree = ast.parse(path.read_text())
    for _, name in _imports(tree):
        if not name.startswith("dealscore.") or layer not in ALLOWED:
            continue
        target = name.split(".")[1]
        if layer == "jobs" and target == "jobs":
            pytest.fail(f"{path.relative_to(PACKAGE)} imports another job: {name}")
        assert target == layer or target in ALLOWED[layer], (
            f"{path.relative_to(PACKAGE)} ({layer}) imports {name}"
        )
    if layer in ("features", "model", "schemas", "pipeline"):  # MLflow stays in tracking, jobs
        assert not any(n.split(".")[0] == "mlflow" for _, n in _imports(tree)), path


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_executable_imports_the_command_line(path):
    layer = _layer(path)
    if layer == "cli" or layer in CLI_IMPORTED_BY:
        return
    for _, name in _imports(ast.parse(path.read_text())):
        assert name.split(".")[:2] != ["dealscore", "cli"], (
            f"{path.relative_to(PACKAGE)} ({layer}) imports the command line: {name}"
        )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_sit_at_the_top_except_optional_dependencies(path):
    tree = ast.parse(path.read_text())
    relative = str(path.relative_to(PACKAGE))
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for _, name in _imports(function):
            assert (relative, name.split(".")[0]) in LAZY, (
                f"{relative}: {function.name} imports {name} inside the function"
            )


CLOCK = {"now", "today", "utcnow", "time", "monotonic"}
FILES = {
    "open",
    "read_text",
    "write_text",
    "read_bytes",
    "write_bytes",
    "read_parquet",
    "read_csv",
    "read_sql_table",
    "to_parquet",
    "to_csv",
    "iterdir",
    "glob",
    "mkdir",
    "unlink",
    "exists",
    "is_dir",
    "is_file",
}
# The Spark engine finds its tables' files itself (Spark reads them, not this process).
FILES_ALLOWED = {("pipeline/spark/read.py", name) for name in ("exists", "is_dir", "glob")}


@pytest.mark.parametrize(
    "path",
    [p for p in _modules() if _layer(p) in ("schemas", "features", "model", "pipeline")],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_the_clock_and_the_file_system_are_asked_by_jobs_only(path):
    # given a module below the jobs
    relative = str(path.relative_to(PACKAGE))
    # when its calls are read
    calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]
    names = [
        c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", "")
        for c in calls
    ]
    # then none reads the clock or touches a file: the job passes times and frames in
    assert not [n for n in names if n in CLOCK], f"{relative} reads the clock"
    touched = [n for n in names if n in FILES and (relative, n) not in FILES_ALLOWED]
    assert not touched, f"{relative} touches the file system: {touched}"


# Rooms a newcomer can find: no module over 400 lines, no function over 60; a long one hides
# several steps that each want a name.
@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_and_function_stays_short(path):
    text = path.read_text()
    relative = path.relative_to(PACKAGE)
    lines = len(text.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{relative}: {lines} lines, over {MAX_MODULE_LINES}"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{relative}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"
