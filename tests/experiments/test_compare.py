"""The comparison's tables: what a reader of the leaderboard sees."""

from __future__ import annotations

import csv
import math

from fusionzoo.experiments import RunResult, format_table, summarise, write_results_csv, write_results_markdown


def run(model: str, seed: int, best: float, error: float | None = 1.0) -> RunResult:
    return RunResult(model=model, seed=seed, parameters=6_616_659, best_valid_mse=best, best_epoch=20,
                     final_valid_mse=best + 0.01, position_error=error, train_seconds=600.0 + seed, checkpoint="x")


RESULTS = [run("matmul", 0, 0.369), run("matmul", 1, 0.394), run("matmul", 2, 0.398),
           run("bilinear", 0, 0.224, 0.6), run("bilinear", 1, 0.248, 0.7), run("bilinear", 2, 0.220, 0.62)]


def test_summary_is_mean_and_sample_std_over_seeds():
    rows = {row["model"]: row for row in summarise(RESULTS)}
    assert rows["matmul"]["seeds"] == 3
    assert math.isclose(rows["matmul"]["best_valid_mse"], (0.369 + 0.394 + 0.398) / 3)
    assert math.isclose(rows["bilinear"]["position_error_std"], 0.05291502622129181)


def test_markdown_table_lists_the_best_model_first_with_each_seed():
    lines = format_table(RESULTS, markdown=True).splitlines()
    assert lines[0] == ("| model | parameters | best valid MSE | final valid MSE | position error | train time (s) "
                        "| per seed (best valid MSE) |")
    assert lines[1] == "| --- | --- | --- | --- | --- | --- | --- |"
    assert lines[2] == "| bilinear | 6,616,659 | 0.231 ± 0.015 | 0.241 ± 0.015 | 0.640 ± 0.053 | 601 ± 1 | 0.224, 0.248, 0.220 |"
    assert lines[3].startswith("| matmul | 6,616,659 | 0.387 ± 0.016 |") and lines[3].endswith("| 0.369, 0.394, 0.398 |")
    assert len(lines) == 4


def test_text_table_aligns_columns_and_drops_the_spread_for_one_seed():
    lines = format_table([run("rgb", 0, 2.5, None), run("concat", 0, 2.0)]).splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["concat", "rgb"]
    assert "±" not in "".join(lines) and "per seed" not in lines[0]
    # A run without a position error shows a dash, not NaN.
    assert lines[2].split()[4] == "-" and "nan" not in "".join(lines)
    assert len({line.index("2.") for line in lines[1:]}) == 1


def test_result_files_are_replaced_whole_when_a_comparison_is_rerun(tmp_path):
    write_results_csv(RESULTS, tmp_path / "results.csv")
    write_results_markdown(RESULTS, tmp_path / "results.md")
    write_results_csv(RESULTS[:3], tmp_path / "results.csv")
    write_results_markdown(RESULTS[:3], tmp_path / "results.md")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.md"]  # no temporary left behind
    with open(tmp_path / "results.csv") as f:
        assert [(r["model"], r["seed"]) for r in csv.DictReader(f)] == [("matmul", "0"), ("matmul", "1"), ("matmul", "2")]
    assert (tmp_path / "results.md").read_text() == format_table(RESULTS[:3], markdown=True) + "\n"
