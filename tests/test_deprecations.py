"""Names renamed when "seed" came to mean a random seed only keep working for one release, with a
DeprecationWarning that names their replacement."""

import pytest

import fusionzoo
import fusionzoo.data
import fusionzoo.experiments
import fusionzoo.sim

ALIASES = [
    (fusionzoo, "convert_seed_state_dict", fusionzoo.convert_course_state_dict, "fusionzoo.convert_course_state_dict"),
    (fusionzoo.data, "seed_splits", fusionzoo.data.course_splits, "fusionzoo.data.course_splits"),
    (fusionzoo.data, "generate_scenes", fusionzoo.sim.generate_scenes, "fusionzoo.sim.generate_scenes"),
    (fusionzoo.data, "SceneConfig", fusionzoo.sim.SceneConfig, "fusionzoo.sim.SceneConfig"),
    (fusionzoo.experiments, "SEED_MODELS", fusionzoo.experiments.COURSE_MODELS, "fusionzoo.experiments.COURSE_MODELS"),
]


@pytest.mark.parametrize(("module", "old", "new", "new_name"), ALIASES, ids=[a[1] for a in ALIASES])
def test_an_old_name_warns_naming_its_replacement_and_gives_it(module, old, new, new_name):
    with pytest.warns(DeprecationWarning, match=f"{module.__name__}.{old} is deprecated .* use {new_name}"):
        assert getattr(module, old) is new


def test_an_old_import_statement_still_works_with_the_warning():
    with pytest.warns(DeprecationWarning, match="seed_splits"):
        from fusionzoo.data import seed_splits  # noqa: F401


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'seed_split'"):
        fusionzoo.data.seed_split  # noqa: B018
