"""jsproj: event-sourced read models on PostgreSQL, with projections written once
in plain JavaScript and run unchanged in Python (embedded V8), PostgreSQL and Node.js.
"""

from jsproj.errors import JsprojError
from jsproj.projections import BatchResult, Change, ProjectionInfo, Projections, read_folder
from jsproj.sandbox import Sandbox
from jsproj.simulation import Views, simulate

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "Change",
    "JsprojError",
    "ProjectionInfo",
    "Projections",
    "Sandbox",
    "Views",
    "read_folder",
    "simulate",
]
