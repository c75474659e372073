"""Narrowing the search space: canonical forms, and a 422 naming every impossible request."""

from __future__ import annotations

from typing import Any

import pytest

from automl.errors import InvalidJobRequest
from automl.hypermodels.narrowing import normalize_overrides
from automl.hypermodels.space import SPACE_BY_NAME, describe, is_active


def problems(raw: dict[str, Any], task: str = "binary") -> dict[str, str]:
    with pytest.raises(InvalidJobRequest) as excinfo:
        normalize_overrides(raw, task)
    messages = excinfo.value.errors["search_space"]
    return {m.split(":", 1)[0]: m for m in messages}


def test_scalars_fix_lists_choose_objects_narrow() -> None:
    out = normalize_overrides(
        {"num_layers": {"min": 1, "max": 3}, "activation": ["relu", "elu"], "dropout": 0.2,
         "learning_rate": {"min": 1e-4, "max": 1e-2, "sampling": "log"}, "l2": {"min": 1e-5, "max": 1e-3},
         "batch_size": [32], "residual": [True, False], "units": {"min": 64, "max": 64}},
        "binary",
    )
    assert out["num_layers"] == {"min": 1, "max": 3, "step": None, "sampling": "linear"}
    assert out["activation"] == {"values": ["relu", "elu"]}
    assert out["dropout"] == {"fixed": 0.2}
    assert out["learning_rate"]["sampling"] == "log" and out["learning_rate"]["min"] == 1e-4
    assert out["l2"] == {"values": [1e-5, 1e-4, 1e-3]}
    assert out["batch_size"] == {"fixed": 32}
    assert out["residual"] == {"values": [True, False]}
    assert out["units"] == {"fixed": 64}
    assert normalize_overrides(None, "binary") == {}


def test_unknown_names_and_impossible_ranges_are_named() -> None:
    found = problems({
        "num_layerz": 2,
        "num_layers": {"min": 4, "max": 2},
        "dropout": 0.9,
        "activation": ["relu", "swoosh"],
        "units": {"min": 10.5},
        "learning_rate": {"min": 0, "max": 0.1, "sampling": "log"},
        "batch_norm": "yes",
        "optimizer": {"min": 1},
        "batch_size": [],
    })
    assert set(found) == {"num_layerz", "num_layers", "dropout", "activation", "units", "learning_rate",
                          "batch_norm", "optimizer", "batch_size"}
    assert "unknown hyperparameter" in found["num_layerz"]
    assert "greater than max" in found["num_layers"]
    assert "outside the allowed range" in found["dropout"]
    assert "'swoosh' is not one of" in found["activation"]
    assert "whole number" in found["units"]
    assert "outside the allowed range" in found["learning_rate"]
    assert "true or false" in found["batch_norm"]
    assert "list of values" in found["optimizer"]
    assert "empty list" in found["batch_size"]


def test_task_specific_and_unreachable_hyperparameters() -> None:
    assert "does not apply to a regression task" in problems({"class_weight": "balanced"}, "regression")[
        "class_weight"]
    assert "does not apply to a binary task" in problems({"loss": "mae"})["loss"]
    assert "applies only when optimizer" in problems({"optimizer": "adam", "momentum": 0.5})["momentum"]
    assert "applies only when num_layers" in problems(
        {"num_layers": {"max": 2}, "width_schedule": "free", "units_3": 32})["units_3"]
    assert "width_schedule" in problems({"width_schedule": "funnel", "units_1": 32})["units_1"]
    # Reachable: sgd is among the optimizers, so momentum may be narrowed.
    assert normalize_overrides({"optimizer": ["adam", "sgd"], "momentum": [0.9, 0.99]}, "binary")["momentum"]


def test_described_space_covers_every_hyperparameter_with_its_domain() -> None:
    described = {d["name"]: d for d in describe()}
    assert set(described) == set(SPACE_BY_NAME)
    for name in ("num_layers", "units", "shrink", "residual", "wide_deep", "activation", "dropout", "batch_norm",
                 "l1", "l2", "activity_l2", "max_norm", "optimizer", "momentum", "nesterov", "learning_rate",
                 "lr_schedule", "batch_size", "class_weight", "loss"):
        assert name in described
    assert described["learning_rate"]["sampling"] == "log"
    assert set(described["activation"]["choices"]) >= {"relu", "leaky_relu", "prelu", "elu", "selu", "gelu",
                                                      "swish", "tanh", "sigmoid"}
    assert set(described["optimizer"]["choices"]) == {"sgd", "rmsprop", "adam", "adamw", "nadam"}
    assert set(described["lr_schedule"]["choices"]) == {"constant", "cosine", "step", "exponential", "inverse_time",
                                                       "reduce_on_plateau"}
    # The options that matter for real tables (issue 18), each searchable and documented.
    assert described["numeric_transform"]["choices"] == ["standard", "robust", "quantile"]
    assert described["numeric_embedding"]["choices"] == ["none", "periodic", "ple"]
    assert described["embedding_units"]["active_when"] == {"numeric_embedding": ["periodic", "ple"]}
    assert described["category_embedding"]["choices"] == [0, 4, 8, 16]
    assert described["label_smoothing"]["tasks"] == ["binary", "multiclass"]
    assert described["target_transform"]["tasks"] == ["regression"]
    assert described["target_transform"]["choices"] == ["none", "log1p", "quantile"]
    assert described["momentum"]["active_when"] == {"optimizer": ["sgd"]}
    assert "loss" not in {d["name"] for d in describe("binary")}
    assert "class_weight" not in {d["name"] for d in describe("regression")}


def test_is_active_applies_every_condition() -> None:
    assert is_active("units_2", {"width_schedule": "free", "num_layers": 3})
    assert not is_active("units_2", {"width_schedule": "funnel", "num_layers": 3})
    assert not is_active("units_2", {"width_schedule": "free", "num_layers": 2})
