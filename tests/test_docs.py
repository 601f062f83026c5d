"""The README and docs: their Python snippets run, and CI runs the README's test command."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_second():
    setup = ROOT.joinpath("README.md").read_text().split("## Set-up on a new machine", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", setup, flags=re.S)
    assert len(commands) == 2 and all("\n" not in c for c in commands), commands
    assert commands[0].startswith("pip install -e ")
    ci = ROOT.joinpath(".ci", "run").read_text().splitlines()
    assert commands[1] in ci, ".ci/run must run the README's test command verbatim"


def test_models_reference_table_is_the_registrys():
    from fusionzoo import list_models
    from fusionzoo.experiments.report import model_table

    text = ROOT.joinpath("docs", "models.md").read_text()
    table = text.split("<!-- models-table:start -->\n", 1)[1].split("<!-- models-table:end -->", 1)[0]
    assert table.strip() == model_table(list_models(), markdown=True), "regenerate with: fusionzoo list --markdown"


def test_weights_catalogue_table_is_the_catalogues():
    from fusionzoo.weights.catalog import catalog_table

    text = ROOT.joinpath("docs", "weights.md").read_text()
    table = text.split("<!-- weights-table:start -->\n", 1)[1].split("<!-- weights-table:end -->", 1)[0]
    assert table.strip() == catalog_table(), "regenerate with: fusionzoo pretrain --list"


def test_scene_knob_table_is_the_configs():
    import dataclasses

    from fusionzoo.sim.scenes import SceneConfig

    rows = [f"| `{f.name}` | `{f.default!r}` | {f.metadata['help']} |" for f in dataclasses.fields(SceneConfig)]
    text = ROOT.joinpath("docs", "dataset.md").read_text()
    table = text.split("<!-- scene-knobs:start -->\n", 1)[1].split("<!-- scene-knobs:end -->", 1)[0]
    assert table.strip() == "\n".join(["| knob | default | meaning |", "|---|---|---|", *rows])


SNIPPETS = [(p, i, code) for p in DOCS for i, code in enumerate(blocks(p, "python"))]


@pytest.mark.parametrize(("path", "index", "code"), SNIPPETS, ids=[f"{p.name}#{i}" for p, i, _ in SNIPPETS])
def test_doc_snippet_runs(path, index, code, tmp_path, monkeypatch):
    from fusionzoo import registry
    from fusionzoo.nn.fusion import base as fusion

    # Snippets may register models or operators; those vanish after the snippet.
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setattr(fusion, "_FUSIONS", dict(fusion._FUSIONS))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{path.name}#python{index}", "exec"), {"__name__": f"snippet_{index}"})


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_in_the_docs_reach_a_file_and_heading():
    for page in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if "://" in target:
                continue
            file, _, anchor = target.partition("#")
            linked = (page.parent / file).resolve() if file else page
            assert linked.exists(), f"{page.name}: link to {target} names no file"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.MULTILINE)
                assert anchor in {_anchor(h) for h in headings}, f"{page.name}: link to {target} names no heading"
