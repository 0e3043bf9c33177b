-- pge_deploy takes prune (sql/functions/deploy.sql): a deploy removes the
-- deployed projections its set lacks only when asked to. A new argument is a
-- new signature: the old function goes, the functions file makes the new one.
drop function if exists pge_deploy(jsonb, text, text);
