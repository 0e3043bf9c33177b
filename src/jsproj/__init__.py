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
    from jsproj.engine.projections import BatchResult, Change, ProjectionInfo, Projections, read_folder
    from jsproj.engine.sandbox import Sandbox
    from jsproj.engine.simulation import Views, simulate
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
        StreamArchivedError,
        StreamDeletedError,
        SubscriptionStoppedError,
        UnknownDocumentError,
        UnknownProjectionError,
        UnknownStreamError,
        WaitTimeoutError,
    )
    from jsproj.follow.daemon import Daemon
    from jsproj.follow.subscriptions import Subscriber, Subscription, subscribe, subscriber
    from jsproj.projections.deploy import DeployReport, deploy
    from jsproj.projections.erasure import Erased, erase
    from jsproj.projections.live import aggregate
    from jsproj.projections.operations import list_dead_letters, rebuild, retry
    from jsproj.projections.status import ProjectionStatus, projection_status, wait_for_projections
    from jsproj.projections.views import AsyncView, Document, View, export_views, fetch_view
    from jsproj.store.aio import AsyncEventStore
    from jsproj.store.connecting import connect, connect_async
    from jsproj.store.recorded import AppendResult, RecordedEvent, Stream
    from jsproj.store.sync import EventStore
    from jsproj.store.transactions import PendingAppend, Transaction
    from jsproj.tools.examples import example

#: Where each public name lives.
_EXPORTS = {
    "AppendResult": "jsproj.store.recorded",
    "AsyncEventStore": "jsproj.store.aio",
    "BatchResult": "jsproj.engine.projections",
    "BatchTooLargeError": "jsproj.errors",
    "Change": "jsproj.engine.projections",
    "ConcurrencyError": "jsproj.errors",
    "Daemon": "jsproj.follow.daemon",
    "DeployReport": "jsproj.projections.deploy",
    "Erased": "jsproj.projections.erasure",
    "erase": "jsproj.projections.erasure",
    "EventStore": "jsproj.store.sync",
    "Subscriber": "jsproj.follow.subscriptions",
    "Subscription": "jsproj.follow.subscriptions",
    "subscribe": "jsproj.follow.subscriptions",
    "subscriber": "jsproj.follow.subscriptions",
    "InputError": "jsproj.errors",
    "InvalidEventError": "jsproj.errors",
    "JsprojError": "jsproj.errors",
    "PendingAppend": "jsproj.store.transactions",
    "ProjectionError": "jsproj.errors",
    "ProjectionHandlerError": "jsproj.errors",
    "ProjectionInfo": "jsproj.engine.projections",
    "ProjectionStatus": "jsproj.projections.status",
    "ProjectionStoppedError": "jsproj.errors",
    "Projections": "jsproj.engine.projections",
    "RecordedEvent": "jsproj.store.recorded",
    "Sandbox": "jsproj.engine.sandbox",
    "SandboxLimitError": "jsproj.errors",
    "StoreError": "jsproj.errors",
    "StoreUnavailableError": "jsproj.errors",
    "SubscriptionStoppedError": "jsproj.errors",
    "Stream": "jsproj.store.recorded",
    "Transaction": "jsproj.store.transactions",
    "UnknownDocumentError": "jsproj.errors",
    "UnknownProjectionError": "jsproj.errors",
    "StreamArchivedError": "jsproj.errors",
    "StreamDeletedError": "jsproj.errors",
    "UnknownStreamError": "jsproj.errors",
    "Views": "jsproj.engine.simulation",
    "WaitTimeoutError": "jsproj.errors",
    "aggregate": "jsproj.projections.live",
    "connect": "jsproj.store.connecting",
    "example": "jsproj.tools.examples",
    "connect_async": "jsproj.store.connecting",
    "list_dead_letters": "jsproj.projections.operations",
    "deploy": "jsproj.projections.deploy",
    "export_views": "jsproj.projections.views",
    "AsyncView": "jsproj.projections.views",
    "Document": "jsproj.projections.views",
    "View": "jsproj.projections.views",
    "fetch_view": "jsproj.projections.views",
    "projection_status": "jsproj.projections.status",
    "read_folder": "jsproj.engine.projections",
    "rebuild": "jsproj.projections.operations",
    "retry": "jsproj.projections.operations",
    "simulate": "jsproj.engine.simulation",
    "wait_for_projections": "jsproj.projections.status",
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
    "Erased",
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
    "StreamArchivedError",
    "StreamDeletedError",
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
    "erase",
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
