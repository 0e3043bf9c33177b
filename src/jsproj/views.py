"""``jsproj.views``, the documented import path of :mod:`jsproj.projections.views`."""

from jsproj.projections.views import AsyncView, Document, View, export_views, fetch_view

__all__ = ["AsyncView", "Document", "View", "export_views", "fetch_view"]
