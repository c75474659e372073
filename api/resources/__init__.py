"""One folder per REST resource: ``routes.py`` (MethodViews) and ``schemas.py`` (marshmallow)."""

from api.resources.datasets.routes import blp as datasets
from api.resources.jobs.routes import blp as jobs
from api.resources.models.routes import blp as models
from api.resources.search_space.routes import blp as search_space

BLUEPRINTS = [datasets, jobs, models, search_space]
