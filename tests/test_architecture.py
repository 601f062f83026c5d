"""The house's layout: imports point down the layers (import-linter), one greppable factory per
registered model, and the course's sizes written once."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

import fusionzoo
from fusionzoo.nn.course import COURSE

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "fusionzoo"


def test_the_layers_contract_is_kept():
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0


@pytest.mark.parametrize(
    ("module", "upward_import", "broken"),
    [
        ("nn/encoders.py", "from ..experiments import report", "fusionzoo.nn.encoders -> fusionzoo.experiments.report"),
        ("registry.py", "from .weights import checkpoint", "fusionzoo.registry -> fusionzoo.weights.checkpoint"),
        ("data/samples.py", "from ..models import families", "fusionzoo.data.samples -> fusionzoo.models.families"),
    ],
    ids=["lower-imports-higher", "registry-imports-weights", "independent-siblings"],
)
def test_the_layers_contract_fails_on_an_import_that_points_up(tmp_path, module, upward_import, broken):
    copy = tmp_path / "src" / "fusionzoo"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / module, "a") as f:
        f.write(f"\n{upward_import}  # noqa: E402\n")
    # The copy comes first on the path, so import-linter analyses it instead of the installed package.
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
         f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True))"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and broken in result.stdout, result.stdout


def test_the_registry_imports_nothing_of_fusionzoo_but_the_name_helper():
    graph = grimp.build_graph("fusionzoo", cache_dir=None)
    imported = {m for m in graph.find_modules_directly_imported_by("fusionzoo.registry") if m.startswith("fusionzoo")}
    assert imported <= {"fusionzoo._names"}, imported


def test_every_registered_model_is_one_register_model_def_of_its_name():
    tree = ast.parse((PACKAGE / "models" / "zoo.py").read_text())

    def registers(node: ast.FunctionDef) -> bool:
        return any(getattr(getattr(d, "func", d), "id", None) == "register_model" for d in node.decorator_list)

    factories = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and registers(n)]
    assert sorted(factories) == fusionzoo.list_models() and len(set(factories)) == len(factories)
    for name in factories:
        assert fusionzoo.registry.get_spec(name).factory.__doc__, f"{name} has no docstring"


@pytest.mark.parametrize("size", ["widths", "branch_widths", "hidden"])
def test_the_course_sizes_are_written_once(size):
    literal = repr(getattr(COURSE, size))
    files = [p for p in PACKAGE.rglob("*.py") if literal in p.read_text()]
    assert files == [PACKAGE / "nn" / "course.py"] and files[0].read_text().count(literal) == 1, files
