"""The shape of the package: data flows one way (files -> store -> query ->
render -> transports -> serving), config depends on nothing, and the ingest
command runs without the serving stack installed."""
import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ercot_fast"

# Each module's layer: a module may import its own layer and the ones below,
# never one above (the transports never read files, the query layer never
# names a transport, kernels never see HTTP).
LAYERS = [
    {"config", "errors", "logs"},
    {"timeutil", "files", "access", "metrics", "datadir"},
    {"datasets", "kernels"},
    {"store", "health", "ingest", "demo", "fetch"},
    {"query", "sql"},
    {"render"},
    {"api", "flight", "client"},
    {"serve"},
    {"cli", "entry"},
]


def layer_of(module):
    top = module.split(".")[1] if module.startswith("ercot_fast.") else module
    return next(i for i, names in enumerate(LAYERS) if top in names)


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def our_imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ercot_fast"):
            if node.module != "ercot_fast":
                yield node.module
                continue
            for alias in node.names:  # `from ercot_fast import x`: the module ercot_fast.x, or a name
                is_module = (PACKAGE / f"{alias.name}.py").exists() or (PACKAGE / alias.name).is_dir()
                yield f"ercot_fast.{alias.name}" if is_module else "ercot_fast"
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("ercot_fast"))


@pytest.mark.parametrize("name, path", list(modules()), ids=[n for n, _ in modules()])
def test_module_states_its_concern_and_imports_only_downwards(name, path):
    assert ast.get_docstring(ast.parse(path.read_text())), f"{path} has no module docstring"
    if name == "ercot_fast":
        return
    for imported in our_imports(path):
        if imported == "ercot_fast":
            continue
        assert layer_of(imported) <= layer_of(name), f"{name} imports {imported}, a layer above it"


def test_config_imports_nothing_of_ours():
    assert list(our_imports(PACKAGE / "config.py")) == []


BLOCK_SERVING_STACK = """
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    # as if falcon, gunicorn and meinheld were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"falcon", "gunicorn", "meinheld"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Absent())
"""


def run_without_serving_stack(code):
    return subprocess.run(
        [sys.executable, "-c", BLOCK_SERVING_STACK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )


def test_cli_and_ingest_work_without_falcon_gunicorn_meinheld(tmp_path):
    csv = tmp_path / "dam.csv"
    csv.write_text(
        "DeliveryDate,HourEnding,SettlementPoint,SettlementPointPrice,DSTFlag\n"
        "02/17/2021,01:00,HB_NORTH,1200.5,N\n"
        "02/17/2021,02:00,HB_NORTH,1300.25,N\n"
    )
    run = run_without_serving_stack(
        f"""
        import contextlib, io, sys
        import ercot_fast.cli as cli
        help_text = io.StringIO()
        with contextlib.redirect_stdout(help_text):
            try:
                cli.main(["ingest", "--help"])
            except SystemExit as exc:
                assert exc.code == 0, exc.code
        assert "NP4-190-CD" in help_text.getvalue()
        cli.main(["ingest", {str(csv)!r}, "--data-dir", {str(tmp_path / "data")!r}, "--no-progress"])
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {{"falcon", "gunicorn", "meinheld"}})
        assert not loaded, loaded
        assert "pyarrow.flight" not in sys.modules and "ercot_fast.api" not in sys.modules
        print("OK")
        """
    )
    assert run.returncode == 0 and run.stdout.rstrip().endswith("OK"), run.stdout + run.stderr
    assert "values: 2 added" in run.stdout
    assert list((tmp_path / "data" / "ercot_fast" / "day_ahead").glob("*.parquet"))


def test_serve_without_the_serving_stack_says_what_is_missing():
    run = run_without_serving_stack(
        """
        import ercot_fast.cli as cli
        cli.main(["serve", "--data-dir", "/nonexistent"])
        """
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "error: `ercot-fast serve` needs gunicorn" in run.stderr and "sh docker/install.sh" in run.stderr
