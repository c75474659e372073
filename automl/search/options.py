"""Job options that pass unchanged from a job request to its stored job to its search: declared once.

Each option is one field of ``SearchOptions``: its type, default, bounds and description. From
this one declaration the API derives the request and answer fields (``api/resources/jobs``),
``automl.jobs`` checks the bounds and stores the options with the job (one JSON column, so a new
option needs no migration), and the worker's ``SearchSpec`` inherits them. Adding an option:
a field here, the code that uses it, and its row in the README's job-options table (a test
checks that every option has one).

Options a job resolves before storing (``max_trials``, ``max_epochs``, ``patience``, ``seed``,
``time_budget_s``, ``parallel_trials``, ``image_size``) stay columns of their own: they have
defaults that depend on the data, and the service queries them.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

MAX_EXECUTIONS_PER_TRIAL = 10
MAX_ENSEMBLE_SIZE = 10
MAX_RETRAININGS = 10


def option(default: Any, description: str, *, minimum: float | None = None, maximum: float | None = None,
           image_only: bool = False) -> Any:
    """A ``SearchOptions`` field: ``minimum`` is checked when the request is read, ``maximum`` as a
    limit of this service (a 422 that names it); ``image_only`` options are refused for tables."""
    return field(default=default, metadata={"description": description, "minimum": minimum, "maximum": maximum,
                                            "image_only": image_only})


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    executions_per_trial: int = option(1, "Trainings per trial, averaged into its score.",
                                       minimum=1, maximum=MAX_EXECUTIONS_PER_TRIAL)
    target_score: float | None = option(None, "End the search once the objective reaches this value.")
    refit: bool = option(True, "Once the held-out test metrics are taken, retrain the served model (each ensemble "
                               "member) on every row with its hyperparameters and epoch count, as far as "
                               "time_budget_s allows. false: serve the best trials' own weights (trained on the "
                               "training split).")
    ensemble_size: int = option(3, "Most trials in the final model: a weighted ensemble chosen greedily on the "
                                   "validation rows, kept only when it beats the best single trial there, and on few "
                                   "validation rows shrunk towards the two best trials' equal blend. 0 or 1: "
                                   "the best trial alone.", minimum=0, maximum=MAX_ENSEMBLE_SIZE)
    retrainings: int = option(4, "Tables, with refit: how many times each member is retrained on every row, each "
                                 "time with its own seed, as far as time_budget_s allows; the served model averages "
                                 "them and the trial's own weights in equal shares (bagging by seed). 1: once.",
                              minimum=1, maximum=MAX_RETRAININGS)
    mixed_precision: bool = option(False, "Image datasets: train in mixed float16 on GPU workers (ignored on CPU); "
                                          "the saved model computes in float32.", image_only=True)
    portfolio: bool = option(True, "Try the service's portfolio of known-good configurations first (chosen by "
                                   "benchmarks/portfolio.py over public tables), then the tuner's own proposals. "
                                   "false: the tuner proposes every trial from the first, as plain Keras Tuner "
                                   "does (to compare searches, or to explore a narrowed space from scratch).")
    calibrate: bool | None = option(None, "Classifiers: temperature scaling of the served probabilities, fitted on "
                                          "the validation rows (never changes the predicted class). true: always; "
                                          "false: never; null (default): when a temperature fitted on half of the "
                                          "validation rows lowers the other half's log loss. The model card's "
                                          "calibration shows reliability and ECE on the test rows before and after.")


@dataclass(frozen=True)
class OptionInfo:
    name: str
    type: type  # int, float or bool
    nullable: bool
    default: Any
    description: str
    minimum: float | None
    maximum: float | None
    image_only: bool


_TYPES = {"int": int, "float": float, "bool": bool}


def declared() -> list[OptionInfo]:
    """Every option, in declaration order."""
    out = []
    for f in fields(SearchOptions):
        annotation = str(f.type).replace(" ", "")
        base = annotation.removesuffix("|None")
        out.append(OptionInfo(name=f.name, type=_TYPES[base], nullable=annotation != base,
                              default=None if f.default is MISSING else f.default, **f.metadata))
    return out


def pick(values: Any) -> dict[str, Any]:
    """The options among ``values`` (a request, a spec or any object with them as attributes)."""
    return {f.name: getattr(values, f.name) for f in fields(SearchOptions)}


def stored(options: SearchOptions) -> dict[str, Any]:
    return asdict(options)


def from_stored(data: dict[str, Any] | None) -> SearchOptions:
    """Options as stored with a job; an option added since the job was stored takes its default."""
    known = {f.name for f in fields(SearchOptions)}
    return SearchOptions(**{k: v for k, v in (data or {}).items() if k in known})
