-- The PL/JS host of jsproj's engine: QuickJS, in the backend (the PLV8
-- team's successor: trusted, small, no Intl). Everything but
-- `create extension` is shared with PLV8 (sql/engines/javascript.sql) and
-- with the other in-database engine (sql/functions).
create extension if not exists pljs;
