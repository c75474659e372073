"""A Python client for the service, importing only ``requests`` (no TensorFlow, Flask or pandas),
so it installs in seconds in a notebook: ``pip install keras-automl-service`` (the server's
dependencies are the ``[server]`` extra).

    from automl.client import Client, NotFound
"""

from automl.client.client import Client
from automl.client.errors import (
    AutomlError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    JobFailed,
    NotFound,
    NotReady,
    QuotaExceeded,
    RateLimited,
    ServerError,
    ServiceError,
    TooLarge,
    Unauthorized,
    Unavailable,
    WaitTimeout,
)

__all__ = [
    "AutomlError", "Client", "Conflict", "ConnectionFailed", "Forbidden", "InvalidRequest", "JobFailed",
    "NotFound", "NotReady", "QuotaExceeded", "RateLimited", "ServerError", "ServiceError", "TooLarge",
    "Unauthorized", "Unavailable", "WaitTimeout",
]
