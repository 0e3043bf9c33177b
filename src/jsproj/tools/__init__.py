"""Tools for people: the CLI, the REPL, the dashboard, specs, the hosts they run in, the example projects,
events files, and the PostgreSQL servers jsproj starts itself (the embedded default database).

They parse and render, and call the library (:mod:`jsproj.store`, :mod:`jsproj.projections`,
:mod:`jsproj.follow`) for the work.
"""
