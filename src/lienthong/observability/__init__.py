"""Metrics and logging."""

from lienthong.observability.metrics import Metrics

__all__ = ["Metrics"]
