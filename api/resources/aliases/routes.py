"""``/api/v1/aliases``: stable names for models, so clients keep their URL when a better model is promoted."""

from __future__ import annotations

import re
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import scope
from api.resources.aliases.schemas import ALIAS_PATTERN, AliasSchema, AliasSetSchema
from api.services import services
from automl.errors import InvalidRequest
from automl.store import catalogue
from automl.usecases.models import set_alias

blp = Blueprint("aliases", __name__, url_prefix="/api/v1/aliases",
                description="Stable names (e.g. churn-prod) for models; usable wherever a model id is.")

MODEL_ID = re.compile(r"^[0-9a-f]{32}$")


def _check_name(name: str) -> None:
    if not re.match(ALIAS_PATTERN, name) or MODEL_ID.match(name):
        raise InvalidRequest(
            f"Alias '{name[:80]}' is not allowed: use 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit, and not shaped like a model id (32 hex digits).",
            {"name": ["invalid alias name"]},
        )


@blp.route("")
class Aliases(MethodView):
    @blp.response(200, AliasSchema(many=True))
    def get(self) -> Any:
        """Every alias and the model it points at."""
        with services().store.session() as session:
            return catalogue.list_aliases(session, scope())


@blp.route("/<string:name>")
class Alias(MethodView):
    @blp.response(200, AliasSchema)
    def get(self, name: str) -> Any:
        """The model an alias points at."""
        with services().store.session() as session:
            return catalogue.get_alias(session, name, scope())

    @blp.arguments(AliasSetSchema)
    @blp.response(200, AliasSchema, description="The alias now points at the model.")
    @blp.alt_response(201, schema=AliasSchema, description="The alias was created.")
    def put(self, body: dict[str, Any], name: str) -> Any:
        """Create the alias, or move it to another ready model (atomically: no request sees neither)."""
        _check_name(name)
        alias, created = set_alias(services().store, name, body["model_id"], scope())
        return (alias, 201) if created else alias

    @blp.response(204)
    def delete(self, name: str) -> None:
        """Remove the alias (the model stays)."""
        with services().store.session() as session:
            catalogue.delete_alias(session, name, scope())
