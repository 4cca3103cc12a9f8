"""Metrics and logging."""

from lienthong.observability.http import RequestMetrics
from lienthong.observability.metrics import Metrics

__all__ = ["Metrics", "RequestMetrics"]
