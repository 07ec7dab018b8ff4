"""Each field's role is declared once, on its Param; the lists the code uses follow from it."""

import dataclasses

import pytest

from pipeline.config.entry_points import GRID, EvaluateConfig, ModelDataConfig, TrainConfig
from pipeline.config.params import SHARE
from pipeline.config.study import StudyConfig
from pipeline.config.tune import TuneConfig
from pipeline.config.validation import ROLES, Param, fields_with_role, role_key

pytestmark = pytest.mark.fast  # make test-fast

CONFIGS = (TrainConfig, TuneConfig, StudyConfig, EvaluateConfig)


@pytest.mark.parametrize("config_class", CONFIGS)
def test_every_field_has_known_roles(config_class):
    for field in dataclasses.fields(config_class):
        roles = field.metadata["roles"]
        assert roles and set(roles) <= set(ROLES), field.name


def test_a_param_without_a_role_cannot_be_declared():
    with pytest.raises(ValueError, match="roles"):
        Param(0.1, SHARE, "a share")
    with pytest.raises(ValueError, match="roles"):
        Param(0.1, SHARE, "a share", "colour")


def test_the_lists_follow_from_the_roles():
    shape = fields_with_role(TrainConfig, "shape")
    assert {"dataset", "hidden_units", "epochs", "batch_size", "train_size", "engine"} <= set(shape)
    assert not {"seed", "dropout_rates", "learning_rate"} & set(shape)  # each run its own
    assert set(GRID.fields) == set(fields_with_role(ModelDataConfig, "grid"))
    assert "seed" not in GRID.fields
    assert set(fields_with_role(StudyConfig, "execution")) == {"storage", "replicas", "run_figures"}
    assert "n_trials" in fields_with_role(TuneConfig, "resumable")
    assert "max_rate" not in fields_with_role(TuneConfig, "resumable")


OTHER_SHAPE = {
    "dataset": "digits",
    "data_dir": ".",
    "hidden_units": (7, 7, 7),
    "epochs": 3,
    "batch_size": 64,
    "validation_split": 0.2,
    "train_size": 100,
    "max_norm": 3.0,
    "recipe": "notebook",
    "backend": "jax",
    "engine": "keras",
}


def test_runs_that_differ_in_a_shape_field_have_other_shape_keys():
    config = TrainConfig()
    assert set(OTHER_SHAPE) == set(fields_with_role(TrainConfig, "shape"))
    for name, value in OTHER_SHAPE.items():
        changed = dataclasses.replace(
            config, **{name: value}, **({"dataset": "mnist"} if name == "data_dir" else {})
        )
        assert role_key(changed, "shape") != role_key(config, "shape"), name
    assert role_key(dataclasses.replace(config, seed=9), "shape") == role_key(config, "shape")
