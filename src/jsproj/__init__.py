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
    from jsproj.aio import AsyncEventStore
    from jsproj.bundled import example
    from jsproj.connecting import connect, connect_async
    from jsproj.control import list_dead_letters, rebuild, retry
    from jsproj.daemon import Daemon
    from jsproj.deploy import DeployReport, deploy
    from jsproj.errors import (
        BatchTooLargeError,
        ConcurrencyError,
        InputError,
        InvalidEventError,
        JsprojError,
        ProjectionError,
        ProjectionHandlerError,
        ProjectionStoppedError,
        SandboxLimitError,
        StoreError,
        StoreUnavailableError,
        SubscriptionStoppedError,
        UnknownDocumentError,
        UnknownProjectionError,
        UnknownStreamError,
        WaitTimeoutError,
    )
    from jsproj.live import aggregate
    from jsproj.recorded import AppendResult, RecordedEvent, Stream
    from jsproj.runtime.projections import BatchResult, Change, ProjectionInfo, Projections, read_folder
    from jsproj.runtime.sandbox import Sandbox
    from jsproj.runtime.simulation import Views, simulate
    from jsproj.status import ProjectionStatus, projection_status, wait_for_projections
    from jsproj.store import EventStore
    from jsproj.subscriptions import Subscriber, Subscription, subscribe, subscriber
    from jsproj.transactions import PendingAppend, Transaction
    from jsproj.views import AsyncView, Document, View, export_views, fetch_view

#: Where each public name lives.
_EXPORTS = {
    "AppendResult": "jsproj.recorded",
    "AsyncEventStore": "jsproj.aio",
    "BatchResult": "jsproj.runtime.projections",
    "BatchTooLargeError": "jsproj.errors",
    "Change": "jsproj.runtime.projections",
    "ConcurrencyError": "jsproj.errors",
    "Daemon": "jsproj.daemon",
    "DeployReport": "jsproj.deploy",
    "EventStore": "jsproj.store",
    "Subscriber": "jsproj.subscriptions",
    "Subscription": "jsproj.subscriptions",
    "subscribe": "jsproj.subscriptions",
    "subscriber": "jsproj.subscriptions",
    "InputError": "jsproj.errors",
    "InvalidEventError": "jsproj.errors",
    "JsprojError": "jsproj.errors",
    "PendingAppend": "jsproj.transactions",
    "ProjectionError": "jsproj.errors",
    "ProjectionHandlerError": "jsproj.errors",
    "ProjectionInfo": "jsproj.runtime.projections",
    "ProjectionStatus": "jsproj.status",
    "ProjectionStoppedError": "jsproj.errors",
    "Projections": "jsproj.runtime.projections",
    "RecordedEvent": "jsproj.recorded",
    "Sandbox": "jsproj.runtime.sandbox",
    "SandboxLimitError": "jsproj.errors",
    "StoreError": "jsproj.errors",
    "StoreUnavailableError": "jsproj.errors",
    "SubscriptionStoppedError": "jsproj.errors",
    "Stream": "jsproj.recorded",
    "Transaction": "jsproj.transactions",
    "UnknownDocumentError": "jsproj.errors",
    "UnknownProjectionError": "jsproj.errors",
    "UnknownStreamError": "jsproj.errors",
    "Views": "jsproj.runtime.simulation",
    "WaitTimeoutError": "jsproj.errors",
    "aggregate": "jsproj.live",
    "connect": "jsproj.connecting",
    "example": "jsproj.bundled",
    "connect_async": "jsproj.connecting",
    "list_dead_letters": "jsproj.control",
    "deploy": "jsproj.deploy",
    "export_views": "jsproj.views",
    "AsyncView": "jsproj.views",
    "Document": "jsproj.views",
    "View": "jsproj.views",
    "fetch_view": "jsproj.views",
    "projection_status": "jsproj.status",
    "read_folder": "jsproj.runtime.projections",
    "rebuild": "jsproj.control",
    "retry": "jsproj.control",
    "simulate": "jsproj.runtime.simulation",
    "wait_for_projections": "jsproj.status",
}

__all__ = [
    "AppendResult",
    "AsyncEventStore",
    "AsyncView",
    "BatchResult",
    "BatchTooLargeError",
    "Change",
    "ConcurrencyError",
    "Daemon",
    "DeployReport",
    "Document",
    "EventStore",
    "InputError",
    "InvalidEventError",
    "JsprojError",
    "PendingAppend",
    "ProjectionError",
    "ProjectionHandlerError",
    "ProjectionInfo",
    "ProjectionStatus",
    "ProjectionStoppedError",
    "Projections",
    "RecordedEvent",
    "Sandbox",
    "SandboxLimitError",
    "StoreError",
    "StoreUnavailableError",
    "Stream",
    "Subscriber",
    "Subscription",
    "SubscriptionStoppedError",
    "Transaction",
    "UnknownDocumentError",
    "UnknownProjectionError",
    "UnknownStreamError",
    "View",
    "Views",
    "WaitTimeoutError",
    "aggregate",
    "connect",
    "connect_async",
    "deploy",
    "example",
    "export_views",
    "fetch_view",
    "list_dead_letters",
    "projection_status",
    "read_folder",
    "rebuild",
    "retry",
    "simulate",
    "subscribe",
    "subscriber",
    "wait_for_projections",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read on first use: importlib.metadata costs the worker ~25 ms per start
        from importlib.metadata import version

        return version("jsproj")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'jsproj' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
