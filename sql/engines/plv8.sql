-- The PLV8 host of jsproj's engine: PLV8's V8, in the backend. Everything
-- but `create extension` is shared with PL/JS (sql/engines/javascript.sql)
-- and with the other in-database engine (sql/functions). PLV8 is a trusted
-- language: a DBA creates the extension once, then a role without superuser
-- rights deploys (docs/deploy.md).
create extension if not exists plv8;
