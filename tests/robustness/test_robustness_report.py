"""Evaluating models under the corruptions: the figures, their summary, the tables, CSV, Markdown and
plot, and docs/robustness.md's parameter table (generated from the registry, never hand-copied)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import fusionzoo
from fusionzoo.data import TensorSamples
from fusionzoo.experiments import (evaluate_robustness, format_robustness, plot_robustness, read_robustness_csv,
                                   summarise_robustness, write_robustness_csv, write_robustness_markdown)
from fusionzoo.experiments.robustness import corruption_table, labels_of

ROOT = Path(__file__).resolve().parents[2]
SIZE = 16
CORRUPTIONS = ["camera_missing", "lidar_missing", "misalignment"]


def tiny(name: str):
    torch.manual_seed(0)
    return fusionzoo.create(name, widths=(4, 6, 8), hidden=(12,), image_size=SIZE)


@pytest.fixture(scope="module")
def data() -> TensorSamples:
    g = torch.Generator().manual_seed(0)
    xyza = torch.randn(20, 4, SIZE, SIZE, generator=g) * 20
    xyza[:, 3] = 1.0
    return TensorSamples(torch.rand(20, 4, SIZE, SIZE, generator=g), xyza, torch.randn(20, 9, generator=g))


@pytest.fixture(scope="module")
def results(data):
    return evaluate_robustness({"rgb": tiny("rgb"), "matmul": tiny("matmul")}, data, corruptions=CORRUPTIONS,
                               severities=(1, 5), batch_size=8)


def test_one_figure_per_model_corruption_and_severity_plus_the_clean_one(results, data):
    assert len(results) == 2 * (1 + len(CORRUPTIONS) * 2)
    clean = {r.model: r.mse for r in results if r.corruption == "clean"}
    assert clean["rgb"] == pytest.approx(fusionzoo.evaluate(tiny("rgb"), data).loss)
    for r in results:
        assert r.clean_mse == clean[r.model] and r.relative == pytest.approx(clean[r.model] / r.mse)
    # The rgb model ignores the LiDAR: unaffected by its loss, exactly.
    assert all(r.relative == 1.0 for r in results if r.model == "rgb" and r.corruption == "lidar_missing")


def test_the_summary_averages_severities_then_corruptions(results):
    rows = {r["model"]: r for r in summarise_robustness(results)}
    mine = [r for r in results if r.model == "matmul"]
    per = {c: sum(r.relative for r in mine if r.corruption == c) / 2 for c in CORRUPTIONS}
    assert rows["matmul"]["mean_relative"] == pytest.approx(sum(per.values()) / 3)
    assert rows["matmul"]["lidar_relative"] == pytest.approx(per["lidar_missing"])
    assert rows["rgb"]["lidar_relative"] == 1.0


def test_the_tables_csv_markdown_and_plot_are_written(results, tmp_path):
    text = format_robustness(results)
    assert "mean relative robustness" in text and "camera_missing" in text
    rows = list(csv.DictReader(open(write_robustness_csv(results, tmp_path / "r.csv"))))
    assert len(rows) == len(results) and {"model", "corruption", "severity", "mse", "relative"} <= set(rows[0])
    assert read_robustness_csv(tmp_path / "r.csv") == results  # evaluations made apart can be reported together
    assert write_robustness_markdown(results, tmp_path / "r.md").read_text().startswith("| model | seeds | clean MSE |")
    assert plot_robustness(results, tmp_path / "r.png").stat().st_size > 1000


def test_unknown_corruptions_fail_before_evaluating(data):
    with pytest.raises(KeyError, match="Available"):
        evaluate_robustness({"rgb": tiny("rgb")}, data, corruptions=["fog"])


def test_labels_are_the_shortest_distinct_path_ends():
    assert labels_of(["runs/a/matmul/seed0", "runs/b/matmul/seed0"]) == ["a/matmul/seed0", "b/matmul/seed0"]
    assert labels_of(["runs/x/matmul.safetensors", "runs/x/rgb/seed0/best.safetensors"]) == ["matmul", "seed0"]


def test_the_docs_corruption_table_is_the_registrys():
    text = ROOT.joinpath("docs", "robustness.md").read_text()
    table = text.split("<!-- corruptions-table:start -->\n", 1)[1].split("<!-- corruptions-table:end -->", 1)[0]
    assert table.strip() == corruption_table(), "regenerate with: python -c 'from fusionzoo.experiments.robustness " \
                                                "import corruption_table; print(corruption_table())'"
