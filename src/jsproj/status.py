"""``jsproj.status``, the documented import path of :mod:`jsproj.projections.status`."""

from jsproj.projections.status import ProjectionStatus, projection_status, subscription_status, wait_for_projections

__all__ = ["ProjectionStatus", "projection_status", "subscription_status", "wait_for_projections"]
