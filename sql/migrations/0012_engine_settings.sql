-- The in-database engines' limits and where plpython3u finds mini-racer,
-- written by deploy (the store owner's: docs/security.md). They were
-- settings (jsproj.timeout, jsproj.memory_limit, jsproj.python_path) that
-- any session could change: an application role raised its own limits, or
-- put a folder of its choosing first on the server's Python path. No engine
-- reads a setting a session can change any more.
alter table pge_engine
    add column timeout double precision not null default 10 check (timeout > 0 and timeout <= 3600),
    add column memory_limit int not null default 256 check (memory_limit between 16 and 65536),
    add column python_path text not null default '/usr/local/lib/jsproj/site';

-- pge_append's body moves to pge_append_message (sql/functions/events.sql):
-- pge_append becomes the application's entry, pinned (security definer).
