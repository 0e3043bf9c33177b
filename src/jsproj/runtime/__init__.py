"""The V8 runtime: projection JavaScript run in a sandboxed worker process, and what drives it.

- :mod:`~jsproj.runtime.sandbox`: the host side of the worker (limits, restarts, one call at a time);
- :mod:`~jsproj.runtime.worker` and :mod:`~jsproj.runtime.wire`: the worker process and its framing;
- :mod:`~jsproj.runtime.bundle`: where the JavaScript engine (``js/lib``) lives, in load order;
- :mod:`~jsproj.runtime.projections`: projection files loaded in a sandbox, and the batch calls hosts make;
- :mod:`~jsproj.runtime.simulation`: projections over an event log in memory;
- :mod:`~jsproj.runtime.check`: every problem of a projections folder at once.

Nothing here touches PostgreSQL; the storing hosts (:mod:`jsproj.python_engine`,
:mod:`jsproj.daemon`) use it.
"""
