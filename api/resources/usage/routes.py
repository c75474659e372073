"""``/api/v1/usage``: a team's usage against each of its quotas (an admin key: every team's)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import scope
from api.resources.usage.schemas import UsageArgs, UsageSchema
from api.services import services
from automl.usecases.quotas import usage

blp = Blueprint("usage", __name__, url_prefix="/api/v1/usage",
                description="Usage against the per-team quotas (AUTOML_QUOTA_*).")


@blp.route("")
class Usage(MethodView):
    @blp.arguments(UsageArgs, location="query")
    @blp.response(200, UsageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Deployed models, active jobs, parallel trials and stored bytes, each with its limit."""
        svc = services()
        caller = scope()
        team = (args["team"] if caller.admin else caller.team)
        return {"teams": [entry.as_dict(svc.settings) for entry in usage(svc.store, svc.settings, team)]}
