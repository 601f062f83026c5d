"""The command line, run as a user runs it: exit codes, files written, one-line errors."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusionzoo.cli import main

TINY_SCENE = ["--samples", "360", "--image-size", "16", "--lidar-grid", "16", "16", "--supersample", "1", "--no-progress"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "fusionzoo", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "cubes"
    assert main(["generate", str(folder), *TINY_SCENE]) == 0
    return folder


def test_list_prints_every_model_with_its_parameter_count(tmp_path):
    result = run("list", cwd=tmp_path)
    assert result.returncode == 0
    assert "matmul" in result.stdout and "6,616,659" in result.stdout and "26,260,847" in result.stdout


def test_list_names_prints_the_names_for_scripts(capsys):
    import fusionzoo

    assert main(["list", "--names"]) == 0
    assert capsys.readouterr().out.split() == fusionzoo.list_models()
    assert main(["list", "--names", "c*", "m*"]) == 0
    assert capsys.readouterr().out == "concat matmul\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "matmull"], "unknown model 'matmull'. Did you mean 'matmul'?"),
        (["train", "matmul", "--data", "no/such/folder"], "--data no/such/folder does not exist"),
        (["eval", "missing.safetensors", "--data", "."], "missing.safetensors"),
        (["compare", "--data", "no/such/folder"], "does not exist"),
    ],
)
def test_errors_are_one_line_and_a_nonzero_exit(args, message, tmp_path):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = run("--debug", "info", "nope", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_a_bad_or_abbreviated_flag_is_a_usage_error(capsys):
    for flag in ("--no-such-flag", "--epoch"):
        with pytest.raises(SystemExit) as exit_:
            main(["compare", flag, "3"])
        assert exit_.value.code == 2
        assert f"unrecognized arguments: {flag}" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["list", "info", "generate", "train", "eval", "compare"])
def test_every_command_has_complete_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: fusionzoo " + command in capsys.readouterr().out


def test_generate_refuses_to_overwrite_without_the_flag(tiny_data, capsys):
    assert main(["generate", str(tiny_data), "--samples", "361", *TINY_SCENE[2:]]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_train_then_eval_a_checkpoint(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "matmul", "--data", str(tiny_data), "--epochs", "1", "--image-size", "16",
                 "--set", "image_size=16", "--set", "hidden=[16]", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    # A finished run keeps its best weights and history; what only continuing it needs is gone.
    assert sorted(p.name for p in out.iterdir()) == ["best.safetensors", "history.csv"]
    assert f"best weights in {out / 'best.safetensors'}" in capsys.readouterr().out
    assert main(["eval", str(out / "best.safetensors"), "--data", str(tiny_data)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 320 and report["loss"] > 0 and report["position_error"] > 0


def test_compare_writes_results_histories_checkpoints_and_curves(tiny_data, tmp_path):
    out = tmp_path / "cmp"
    result = run("compare", "--data", str(tiny_data), "--models", "rgb", "concat", "--epochs", "2",
                 "--image-size", "16", "--set", "hidden=[16]", "--seeds", "0", "1", "--out", str(out), "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "best valid MSE" in result.stdout and "±" in result.stdout
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["seed"]) for r in rows] == [("rgb", "0"), ("rgb", "1"), ("concat", "0"), ("concat", "1")]
    assert all(float(r["best_valid_mse"]) <= float(r["final_valid_mse"]) for r in rows)
    table = (out / "results.md").read_text().splitlines()
    assert table[0].startswith("| model | parameters | best valid MSE |") and table[1].startswith("| --- |")
    assert sorted(line.split(" | ")[0] for line in table[2:]) == ["| concat", "| rgb"]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # One copy of each run's weights: no second copy of the best seed's beside the run folders.
    assert sorted(p.name for p in out.iterdir()) == ["concat", "curves.png", "results.csv", "results.md", "rgb"]
    assert sorted(p.name for p in (out / "rgb" / "seed1").iterdir()) == ["best.safetensors", "history.csv"]
    best = {r["model"]: min((x for x in rows if x["model"] == r["model"]), key=lambda x: float(x["best_valid_mse"]))
            for r in rows}
    assert f"best weights of each model: rgb {best['rgb']['checkpoint']}, concat {best['concat']['checkpoint']}" in result.stdout


def test_compare_says_how_to_get_the_plot_without_matplotlib(tiny_data, tmp_path, monkeypatch, capsys):
    # Every matplotlib module, also those an earlier test imported: None makes their import fail.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    code = main(["compare", "--data", str(tiny_data), "--models", "rgb", "--epochs", "1", "--image-size", "16",
                 "--set", "hidden=[8]", "--out", str(tmp_path / "c"), "--no-progress"])
    assert code == 0
    assert 'plot skipped: matplotlib is not installed (pip install "fusionzoo[plot]")' in capsys.readouterr().out
    assert not (tmp_path / "c" / "curves.png").exists()


@pytest.mark.parametrize(("flags", "lr"), [([], 1e-4), (["--quick"], 3e-4), (["--quick", "--lr", "5e-4"], 5e-4)])
def test_compare_trains_at_the_courses_lr_the_quick_presets_or_the_given_one(tiny_data, tmp_path, flags, lr):
    out = tmp_path / "c"
    assert main(["compare", "--data", str(tiny_data), "--models", "rgb", "--epochs", "1", "--image-size", "16",
                 "--set", "hidden=[8]", "--out", str(out), "--no-progress", "--no-plot", *flags]) == 0
    with open(out / "rgb" / "seed0" / "history.csv") as f:
        assert [float(row["lr"]) for row in csv.DictReader(f)] == [lr]


def test_a_finished_compare_run_keeps_its_results_and_a_rerun_trains_nothing(tiny_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "c"
    args = ["compare", "--data", str(tiny_data), "--models", "rgb", "--image-size", "16", "--set", "hidden=[8]",
            "--out", str(out), "--no-progress", "--no-plot"]
    assert main([*args, "--epochs", "1"]) == 0
    run_dir = out / "rgb" / "seed0"
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.safetensors", "history.csv"]
    results = (out / "results.csv").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("fusionzoo.experiments.comparison.fit", no_training)
    assert main([*args, "--epochs", "1"]) == 0
    assert (out / "results.csv").read_text() == results
    capsys.readouterr()
    assert main([*args, "--epochs", "2"]) == 1  # more epochs than it holds, and no state to continue from
    assert f"{run_dir}: holds 1 of 2 epochs and no state.safetensors" in capsys.readouterr().err
    # A finished run counts only for the model it trained: other options are refused, not tabulated.
    assert main([*args, "--epochs", "1", "--set", "hidden=[9]"]) == 1
    assert f"{run_dir / 'best.safetensors'}: the run was trained with another model config: hidden: [8] in the file, [9] given" in capsys.readouterr().err


def test_keep_state_keeps_what_continuing_a_finished_run_needs(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "rgb", "--data", str(tiny_data), "--image-size", "16", "--set", "image_size=16",
            "--set", "hidden=[8]", "--out", str(out), "--no-progress"]
    assert main([*args, "--epochs", "1", "--keep-state"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["best.safetensors", "history.csv", "last.safetensors", "state.safetensors"]
    assert main([*args, "--epochs", "2", "--resume"]) == 0  # continued to a second epoch, then closed
    assert sorted(p.name for p in out.iterdir()) == ["best.safetensors", "history.csv"]
    with open(out / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]


def test_drop_state_still_parses_and_says_it_is_the_default_now(tiny_data, tmp_path):
    with pytest.warns(DeprecationWarning, match="--drop-state is deprecated .* by default now"):
        assert main(["train", "rgb", "--data", str(tiny_data), "--image-size", "16", "--set", "image_size=16",
                     "--set", "hidden=[8]", "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress",
                     "--drop-state"]) == 0
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.safetensors", "history.csv"]


@pytest.mark.parametrize("killed", [False, True], ids=["stopped", "killed"])
def test_resume_of_a_run_stopped_before_its_first_epoch_says_there_is_nothing_to_resume(tiny_data, tmp_path, capsys, killed):
    out = tmp_path / "run"
    out.mkdir()  # what a run stopped in its first epoch leaves: its folder, and its lock file if it was killed
    if killed:
        (out / ".lock").write_text("process 1 on elsewhere")
    assert main(["train", "rgb", "--data", str(tiny_data), "--image-size", "16", "--out", str(out), "--no-progress",
                 "--resume"]) == 1
    err = capsys.readouterr().err
    started = "the run there was" if killed else "if a run was started there, it was"
    assert f"{out} holds no state.safetensors" in err and f"{started} stopped before its first epoch ended" in err
    assert "nothing to resume" in err and "the same command without --resume" in err

def test_train_trains_at_the_courses_lr_unless_told(tiny_data, tmp_path):
    for flags, lr in (([], 1e-4), (["--lr", "2e-4"], 2e-4)):
        out = tmp_path / str(lr)
        assert main(["train", "rgb", "--data", str(tiny_data), "--epochs", "1", "--image-size", "16",
                     "--set", "image_size=16", "--set", "hidden=[8]", "--out", str(out), "--no-progress", *flags]) == 0
        with open(out / "history.csv") as f:
            assert [float(row["lr"]) for row in csv.DictReader(f)] == [lr]


@pytest.mark.parametrize("value", ["widths=[32,64", 'hidden={"a": 1', 'fusion="gated'])
def test_a_set_value_that_looks_like_json_but_does_not_parse_is_an_error_naming_it(tiny_data, tmp_path, capsys, value):
    assert main(["train", "rgb", "--data", str(tiny_data), "--image-size", "16", "--set", value,
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    assert f"--set {value}: the value looks like JSON but does not parse" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("num_outputs=9.0", "num_outputs expects an integer (e.g. 9), got 9.0"),
        ('widths="abc"', 'widths expects a list of integers'),
        ("widths=32", "widths expects a list of integers"),
        ('hidden=[8,"a"]', 'got [8, "a"]'),
        ("feature_norm=1", "feature_norm expects a boolean (e.g. false), got 1"),
        ("fusion=3", "fusion expects a string"),
    ],
)
def test_a_set_value_of_the_wrong_type_is_an_error_naming_option_value_and_type(tiny_data, tmp_path, capsys, value, message):
    assert main(["train", "rgb", "--data", str(tiny_data), "--image-size", "16", "--set", value,
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"--set {value}: " in err and message in err


def test_set_values_of_the_right_type_and_bare_words_pass():
    from fusionzoo.cli import _options

    pairs = ["fusion=gated", "num-outputs=3", "hidden=[]", "widths=[4,8]", 'fusion_options={"rank": 3}',
             "feature_norm=true", "fusion_hidden=null"]
    assert _options(pairs) == {"fusion": "gated", "num_outputs": 3, "hidden": [], "widths": [4, 8],
                               "fusion_options": {"rank": 3}, "feature_norm": True, "fusion_hidden": None}


def test_eval_prints_valid_json_with_null_for_figures_that_are_not_finite(tiny_data, tmp_path, capsys, caplog):
    import torch

    import fusionzoo
    from fusionzoo.weights import save

    model = fusionzoo.create("rgb", image_size=16, hidden=[8])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # finite weights whose products overflow: +inf meets -inf, giving NaN
        for p in model.parameters():
            p.copy_(torch.where(torch.rand(p.shape, generator=generator) < 0.5, -1e30, 1e30))
    checkpoint = save(model, tmp_path / "diverged.safetensors")
    assert main(["eval", str(checkpoint), "--data", str(tiny_data)]) == 0

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    report = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert report["loss"] is None and report["position_error"] is None and report["samples"] == 320
    assert report["non_finite"] == {"loss": "nan", "position_error": "nan"}
    assert "loss is nan and position_error is nan" in caplog.text


def test_generate_overwrite_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    course = tmp_path / "replicator_data_cubes"
    course.mkdir()
    (course / "positions.csv").write_text("header\n")
    assert main(["generate", str(course), "--overwrite", *TINY_SCENE]) == 1
    assert f"{course}: is not a dataset the generator wrote" in capsys.readouterr().err
    assert [p.name for p in course.iterdir()] == ["positions.csv"]
