"""``/api/v1/keys``: admins create, list and revoke API keys (a key is shown once, when created)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import requires_role
from api.resources.keys.schemas import CreatedKeySchema, KeyCreateSchema, KeyListArgs, KeySchema
from api.services import services
from automl.access import Role, parse_duration
from automl.store import api_keys
from automl.usecases.keys import create_key

blp = Blueprint("keys", __name__, url_prefix="/api/v1/keys",
                description="API keys (admin keys only): each acts for one team with one role.")


@blp.route("")
class Keys(MethodView):
    @requires_role(Role.admin)
    @blp.arguments(KeyListArgs, location="query")
    @blp.response(200, KeySchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """Every key by id (never the keys themselves): team, role, label, created, expiry, last use."""
        with services().store.session() as session:
            return api_keys.list_keys(session, args["team"], revoked=args["revoked"])

    @requires_role(Role.admin)
    @blp.arguments(KeyCreateSchema)
    @blp.response(201, CreatedKeySchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Create a key; the answer's ``key`` is the only time it is shown."""
        expires_in = parse_duration(body["expires_in"]) if body["expires_in"] else None
        created = create_key(services().store, body["team"], Role[body["role"]], body["name"], expires_in)
        return {**{name: getattr(created.record, name) for name in KeySchema().fields}, "key": created.secret}


@blp.route("/<string:key_id>")
class Key(MethodView):
    @requires_role(Role.admin)
    @blp.response(204)
    def delete(self, key_id: str) -> None:
        """Revoke the key: serving processes stop accepting it within AUTOML_KEY_CACHE_S seconds."""
        with services().store.session() as session:
            api_keys.revoke_key(session, key_id)
