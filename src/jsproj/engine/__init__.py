"""The V8 runtime: projection JavaScript run in a sandboxed worker process, and what drives it.

- :mod:`~jsproj.engine.sandbox`: the host side of the worker (limits, restarts, one call at a time);
- :mod:`~jsproj.engine.worker` and :mod:`~jsproj.engine.wire`: the worker process and its framing;
- :mod:`~jsproj.engine.bundle`: where the JavaScript engine (``js/lib``) lives, in load order;
- :mod:`~jsproj.engine.projections`: projection files loaded in a sandbox, and the batch calls hosts make;
- :mod:`~jsproj.engine.simulation`: projections over an event log in memory;
- :mod:`~jsproj.engine.check`: every problem of a projections folder at once;
- :mod:`~jsproj.engine.events_file`: events files (JSON, JSON Lines) read as the engine reads them.

Nothing here touches PostgreSQL; the storing hosts (:mod:`jsproj.store.python_engine`,
:mod:`jsproj.follow.daemon`) use it.
"""
