"""The store: the events table and what reads and writes it, for sync and asyncio code.

- :mod:`~jsproj.store.sync` and :mod:`~jsproj.store.aio`: the event store (``EventStore``, ``AsyncEventStore``);
- :mod:`~jsproj.store.steps`: database work written once as steps, driven sync or asyncio;
- :mod:`~jsproj.store.appending`, :mod:`~jsproj.store.reading`: appending and reading, as steps;
- :mod:`~jsproj.store.log`: the one log reader (the gap-safe condition, the high-water mark, record pages
  and record lines) that the store, the daemon and subscribers share;
- :mod:`~jsproj.store.transactions`: appends that commit with the application's own writes;
- :mod:`~jsproj.store.python_engine`: the Python engine, applying inline projections' batches in the database;
- :mod:`~jsproj.store.migrate`: the schema, its migrations and the SQL functions;
- :mod:`~jsproj.store.recorded`, :mod:`~jsproj.store.translate`, :mod:`~jsproj.store.identifiers`,
  :mod:`~jsproj.store.queries`, :mod:`~jsproj.store.connecting`: what the store returns, its errors, SQL
  names, typed single-row queries, and opening a store as the CLI does.

Nothing here imports the follower engine, the projection operations or the tools.
"""
