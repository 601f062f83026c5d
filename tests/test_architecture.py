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

import fusionzoo
from fusionzoo.nn.course import COURSE

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "fusionzoo"


def lint(path: Path, cwd: Path, *, analyse: Path | None = None) -> subprocess.CompletedProcess:
    """import-linter on the contract in ``path``, in a process of its own (it reconfigures logging),
    analysing the package under ``analyse`` when given, else the installed one."""
    env = {**os.environ, "PYTHONPATH": str(analyse)} if analyse else None
    code = f"import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename={str(path)!r}, no_cache=True))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_the_layers_contract_is_kept(tmp_path):
    result = lint(ROOT / "pyproject.toml", tmp_path)
    assert result.returncode == 0 and "1 kept, 0 broken" in result.stdout, result.stdout + result.stderr


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
    result = lint(ROOT / "pyproject.toml", tmp_path, analyse=tmp_path / "src")
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


def module_tree() -> str:
    """The package's tree, one line per module: its path and the first sentence of its docstring."""
    lines = [f"src/fusionzoo/  {{}}"]

    def summary(path: Path) -> str:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        text = " ".join(doc.split())
        return text.split(". ")[0].rstrip(".") + "." if text else "(no docstring)"

    def walk(folder: Path, depth: int) -> None:
        entries = sorted(folder.iterdir(), key=lambda p: (p.is_dir(), p.name != "__init__.py", p.name))
        for entry in entries:
            indent = "  " * depth
            if entry.is_dir() and (entry / "__init__.py").exists():
                lines.append(f"{indent}{entry.name}/  {summary(entry / '__init__.py')}")
                walk(entry, depth + 1)
            elif entry.suffix == ".py" and entry.name != "__init__.py":
                lines.append(f"{indent}{entry.name}  {summary(entry)}")

    lines[0] = f"src/fusionzoo/  {summary(PACKAGE / '__init__.py')} The public API is its __all__."
    walk(PACKAGE, 1)
    return "\n".join(lines)


def test_the_architecture_page_shows_the_packages_tree():
    text = (ROOT / "docs" / "architecture.md").read_text()
    tree = text.split("<!-- module-tree:start -->\n```text\n", 1)[1].split("```\n<!-- module-tree:end -->", 1)[0]
    assert tree.strip() == module_tree(), "regenerate with: python tests/test_architecture.py"


if __name__ == "__main__":
    page = ROOT / "docs" / "architecture.md"
    head, rest = page.read_text().split("<!-- module-tree:start -->\n", 1)
    tail = rest.split("<!-- module-tree:end -->", 1)[1]
    page.write_text(f"{head}<!-- module-tree:start -->\n```text\n{module_tree()}\n```\n<!-- module-tree:end -->{tail}")
