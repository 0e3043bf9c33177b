"""jsproj: event-sourced read models on PostgreSQL, with projections written once
in plain JavaScript and run unchanged in Python (embedded V8), PostgreSQL and Node.js.

The names below are the library's entry points; each is imported on first use,
so that ``import jsproj`` stays cheap (the V8 worker process imports it too).
docs/architecture.md maps every concept to its module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsproj.daemon import Daemon
    from jsproj.deploy import DeployReport, deploy
    from jsproj.errors import JsprojError
    from jsproj.runtime.projections import BatchResult, Change, ProjectionInfo, Projections, read_folder
    from jsproj.runtime.sandbox import Sandbox
    from jsproj.runtime.simulation import Views, simulate
    from jsproj.store import EventStore

#: Where each public name lives.
_EXPORTS = {
    "BatchResult": "jsproj.runtime.projections",
    "Change": "jsproj.runtime.projections",
    "Daemon": "jsproj.daemon",
    "DeployReport": "jsproj.deploy",
    "EventStore": "jsproj.store",
    "JsprojError": "jsproj.errors",
    "ProjectionInfo": "jsproj.runtime.projections",
    "Projections": "jsproj.runtime.projections",
    "Sandbox": "jsproj.runtime.sandbox",
    "Views": "jsproj.runtime.simulation",
    "deploy": "jsproj.deploy",
    "read_folder": "jsproj.runtime.projections",
    "simulate": "jsproj.runtime.simulation",
}

__all__ = [
    "BatchResult",
    "Change",
    "Daemon",
    "DeployReport",
    "EventStore",
    "JsprojError",
    "ProjectionInfo",
    "Projections",
    "Sandbox",
    "Views",
    "deploy",
    "read_folder",
    "simulate",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read on first use: importlib.metadata costs the worker ~25 ms per start
        from importlib.metadata import version

        return version("jsproj")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'jsproj' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
