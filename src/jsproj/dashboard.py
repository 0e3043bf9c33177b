"""``jsproj.dashboard``, the documented import path of :mod:`jsproj.tools.dashboard`."""

from jsproj.tools.dashboard import Dashboard, LagSeries, snapshot

__all__ = ["Dashboard", "LagSeries", "snapshot"]
