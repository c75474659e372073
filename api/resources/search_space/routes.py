"""``/api/v1/search-space``: what a search can vary, and how a job narrows it."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.resources.search_space.schemas import SearchSpaceArgs, SearchSpaceSchema
from automl.hypermodels import space
from automl.search.objectives import DEFAULT_OBJECTIVES, OBJECTIVES, TUNERS

blp = Blueprint("search_space", __name__, url_prefix="/api/v1/search-space",
                description="The default search space, tuners and objectives.")

NARROWING = (
    'A job\'s "search_space" maps a hyperparameter name to a value (fixed), a list (choose among these) '
    'or {"min", "max", "step", "sampling"} (a narrower numeric range). Unknown names, values outside '
    "the ranges below and hyperparameters that the narrowing makes unusable are rejected with a 422."
)


@blp.route("")
class SearchSpace(MethodView):
    @blp.arguments(SearchSpaceArgs, location="query")
    @blp.response(200, SearchSpaceSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Every hyperparameter with its type, range or values, default and the tasks it applies to."""
        task = args["task"]
        objectives = OBJECTIVES if task is None else {task: OBJECTIVES[task]}
        return {
            "hyperparameters": space.describe(task, args["kind"]),
            "tuners": list(TUNERS),
            "objectives": objectives,
            "default_objectives": {t: DEFAULT_OBJECTIVES[t] for t in objectives},
            "narrowing": NARROWING,
        }
