"""Named variants: a registered name for a configuration the leaderboard measured, built exactly as
that configuration, so its figures and weights apply to the name."""

from __future__ import annotations

import torch

import fusionzoo


def test_bilinear_fn_is_the_leaderboards_normalised_bilinear_within_matmuls_budget():
    named = fusionzoo.create("bilinear_fn")
    torch.manual_seed(0)
    measured = fusionzoo.create("bilinear", feature_norm=True, hidden=[996, 100])
    count = sum(p.numel() for p in named.parameters())
    assert count == 6_610_483  # docs/leaderboard.md's row
    assert count <= sum(p.numel() for p in fusionzoo.create("matmul").parameters()) == 6_616_659
    assert {k: v.shape for k, v in named.state_dict().items()} == {k: v.shape for k, v in measured.state_dict().items()}
    named.load_state_dict(measured.state_dict())
    rgb, xyza = torch.rand(2, 4, 64, 64), torch.rand(2, 4, 64, 64)
    assert torch.equal(named.eval()(rgb, xyza), measured.eval()(rgb, xyza))


def test_bilinear_fn_options_can_still_be_overridden():
    model = fusionzoo.create("bilinear_fn", feature_norm=False, hidden=[1000, 100])
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in fusionzoo.create("bilinear").parameters())


def test_bilinear_fn_starts_from_the_same_weights_as_the_measured_configuration_under_one_seed():
    """So the leaderboard's runs, and a weights recipe, train the same weights under either name."""
    torch.manual_seed(7)
    named = fusionzoo.create("bilinear_fn").state_dict()
    torch.manual_seed(7)
    measured = fusionzoo.create("bilinear", feature_norm=True, hidden=[996, 100]).state_dict()
    assert all(torch.equal(named[k], measured[k]) for k in measured)


def test_bilinear_fn_has_weights_recorded_as_its_configurations():
    from fusionzoo.weights.catalog import get_weights

    named, measured = get_weights("bilinear_fn.cubes"), get_weights("bilinear.cubes_norm")
    assert named.options == {} and named.recipe == measured.recipe
    assert named.metrics == measured.metrics and named.num_params == measured.num_params


def test_bilinear_fn_has_a_regularised_recipe_that_meets_issue_24s_goal_within_matmuls_budget():
    """docs/leaderboard.md, "Regularised recipes": half of matmul's 0.387 within its parameter count."""
    from fusionzoo.weights.catalog import get_weights

    entry = get_weights("bilinear_fn.cubes_mirror")
    assert entry.num_params == 6_610_483 <= 6_616_659
    assert entry.metrics["valid_mse"] <= 0.19 and entry.metrics["valid_mse"] + entry.tolerance["valid_mse"] < 0.224
    assert entry.recipe.lr == 3e-4 and (entry.recipe.epochs, entry.recipe.batch_size) == (20, 32)  # the course's protocol
    assert entry.compare_command == ("fusionzoo compare --models bilinear_fn --lr 0.0003 --mirror 0.5 --schedule cosine "
                                     "--warmup 1.0 --seeds 0")
