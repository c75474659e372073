"""One folder per REST resource: ``routes.py`` (MethodViews) and ``schemas.py`` (marshmallow)."""

from api.resources.aliases.routes import blp as aliases
from api.resources.datasets.routes import blp as datasets
from api.resources.jobs.routes import blp as jobs
from api.resources.keys.routes import blp as keys
from api.resources.models.routes import blp as models
from api.resources.search_space.routes import blp as search_space
from api.resources.tfserving.routes import blp as tfserving
from api.resources.usage.routes import blp as usage

BLUEPRINTS = [datasets, jobs, models, aliases, search_space, tfserving, keys, usage]
