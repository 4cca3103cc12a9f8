"""The inbound HTTP API (FastAPI): events, messages, health and metrics."""

from lienthong.api.auth import BearerAuth, Caller, hash_token, new_token
from lienthong.api.limits import BodySizeLimit

__all__ = ["BearerAuth", "BodySizeLimit", "Caller", "hash_token", "new_token"]
