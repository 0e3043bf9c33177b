-- A stream's lifecycle beyond appends (docs/lifecycle.md): archiving and
-- unarchiving. Applied by `jsproj migrate` after the migrations, whenever
-- this file changes (src/jsproj/store/migrate.py): `create or replace`
-- only, with search_path set to the store's schema; inside function bodies
-- @schema@ is the quoted schema name.
--
-- Both are SECURITY DEFINER with a pinned search_path, as pge_append is
-- (sql/functions/events.sql says why; pge_pin_settings pins them with it):
-- they change pge_streams, which no application role may write, and only
-- roles granted EXECUTE on them may call them (docs/deploy.md#privileges).
-- Each takes the stream's append lock (the advisory lock pge_append takes),
-- so that no append is halfway when the stream changes state.

-- Archive a stream: its events stay where they are, but pge_records() (every
-- page, build, rebuild and subscriber read) and the store's reads leave them
-- out, and appends to it are refused (JPS23) until it is unarchived. The
-- views already built from it are kept as they are (docs/lifecycle.md says
-- why). Archiving an archived stream changes nothing. Returns
-- {"streamId", "archivedAt", "changed"}.
create or replace function pge_archive_stream(stream_id text) returns jsonb
language plpgsql
security definer set search_path = pg_catalog, pg_temp
as $$
declare
    v_before timestamptz;
    v_after timestamptz;
begin
    perform pg_advisory_xact_lock(1246974036, hashtext(stream_id));
    select s.archived_at into v_before from @schema@.pge_streams s where s.id = stream_id for update;
    if not found then
        raise exception using errcode = 'JPS04', message = format('there is no stream %s', to_json(stream_id)),
            detail = json_build_object('streamId', stream_id)::text;
    end if;
    v_after := coalesce(v_before, now());
    if v_before is null then
        update @schema@.pge_streams s set archived_at = v_after where s.id = stream_id;
    end if;
    return jsonb_build_object('streamId', stream_id, 'archivedAt', v_after, 'changed', v_before is null);
end;
$$;

revoke execute on function pge_archive_stream(text) from public;

comment on function pge_archive_stream(text) is
    'jsproj: archive a stream (its events are left out of reads, builds and rebuilds; appends are refused); returns {"streamId", "archivedAt", "changed"}';

-- Unarchive a stream: its events are read again, and it takes appends.
-- Projections that had not reached its events fold them when they do; views
-- built while it was archived leave them out until rebuilt. Returns
-- {"streamId", "changed"}.
create or replace function pge_unarchive_stream(stream_id text) returns jsonb
language plpgsql
security definer set search_path = pg_catalog, pg_temp
as $$
declare
    v_before timestamptz;
begin
    perform pg_advisory_xact_lock(1246974036, hashtext(stream_id));
    select s.archived_at into v_before from @schema@.pge_streams s where s.id = stream_id for update;
    if not found then
        raise exception using errcode = 'JPS04', message = format('there is no stream %s', to_json(stream_id)),
            detail = json_build_object('streamId', stream_id)::text;
    end if;
    if v_before is not null then
        update @schema@.pge_streams s set archived_at = null where s.id = stream_id;
    end if;
    return jsonb_build_object('streamId', stream_id, 'changed', v_before is not null);
end;
$$;

revoke execute on function pge_unarchive_stream(text) from public;

comment on function pge_unarchive_stream(text) is
    'jsproj: unarchive a stream (its events are read again and it takes appends); returns {"streamId", "changed"}';
