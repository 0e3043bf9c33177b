-- Inline projections: applying a batch of records with the in-database
-- engine (its trigger, one engine batch per appending statement), and the
-- Python engine's one-round-trip append and its guard. Only
-- pge_engine_call(op, payload) differs between in-database engines: deploy
-- creates it from sql/engines/<engine>.sql.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/store/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name (qualified names instead of a SET search_path
-- clause, which costs ~100 us per call). A signature change is a migration
-- that drops the old function.

-- An engine answer's result, or the engine's error raised as SQLSTATE JP500
-- with the error (kind, projection, event, stack...) as DETAIL.
create or replace function pge_engine_result(answer text) returns jsonb
language plpgsql
as $$
declare
    v_answer jsonb := answer::jsonb;
    v_log jsonb;
begin
    if v_answer ? 'logs' then
        for v_log in select * from jsonb_array_elements(v_answer -> 'logs') loop
            raise notice '[%] %', coalesce(v_log ->> 'projection', v_log ->> 'file', 'projections'), v_log ->> 'message';
        end loop;
    end if;
    if v_answer ? 'error' then
        raise exception using errcode = 'JP500', message = v_answer -> 'error' ->> 'message',
            detail = (v_answer -> 'error')::text;
    end if;
    return v_answer -> 'ok';
end;
$$;

-- Apply a batch of engine records (JSON text, in order) to some projections
-- with the in-database engine: route the views (the rest comes routed, see
-- pge_route), lock and load, apply, write. One engine call without views.
create or replace function pge_apply_records(records text, routed jsonb, projections text[]) returns void
language plpgsql
as $$
declare
    v_views text[] := array(select name from @schema@.pge_projection_definitions
                            where name = any (projections) and kind = 'view');
    v_options text := json_build_object('projections', projections)::text;
    v_batch bigint;
    v_keys jsonb := routed;
    v_result jsonb;
begin
    if cardinality(v_views) > 0 then
        v_batch := (random() * 1e15)::bigint;
        v_keys := v_keys || @schema@.pge_engine_result(@schema@.pge_engine_call('route',
            '{"events":' || records || ',"batch":' || v_batch || ',"options":' || json_build_object('projections', v_views)::text || '}'));
    end if;
    v_result := @schema@.pge_engine_result(@schema@.pge_engine_call('apply',
        case when v_batch is null then '{"events":' || records else '{"batch":' || v_batch end
        || ',"documents":' || @schema@.pge_load_documents(v_keys)::text || ',"options":' || v_options || '}'));
    if jsonb_array_length(v_result -> 'errors') > 0 then
        raise exception using errcode = 'JP500', message = v_result -> 'errors' -> 0 ->> 'message',
            detail = (v_result -> 'errors' -> 0)::text;
    end if;
    perform @schema@.pge_write_changes(v_result -> 'changes');
end;
$$;

-- The in-database inline trigger: one engine batch per appending statement.
-- It serves every engine but the Python one, whatever their names
-- (`engine <> 'python'`). Its events are the statement's transition table
-- (new_events), not pge_events: the one read of records that does not go
-- through pge_records(), and so builds them with pge_event_record itself
-- (reading them again from pge_events by position would add a planned
-- lookup to every append).
create or replace function pge_inline_trigger() returns trigger
language plpgsql
as $$
declare
    v_projections text[];
    v_records text;
    v_routed jsonb;
begin
    select array_agg(name order by name) into v_projections
    from @schema@.pge_projection_definitions where lifecycle = 'inline' and engine <> 'python';
    if v_projections is null then
        return null;
    end if;
    select '[' || string_agg(@schema@.pge_event_record(e.position, e.stream_id, s.type, e.version, e.timestamp,
                                                       e.metadata, e.type, e.id, e.data), ',' order by e.position) || ']',
           @schema@.pge_route(array_agg(e.stream_id), array_agg(s.type), array_agg(e.type), v_projections)
    into v_records, v_routed
    from new_events e join @schema@.pge_streams s on s.id = e.stream_id;
    perform @schema@.pge_apply_records(v_records, v_routed, v_projections);
    return null;
end;
$$;

-- Refuses appends that bypass the Python engine while it keeps inline
-- projections. The setting it reads is set by the entry that appends, as it
-- starts: pge_append sets it to '', pge_append_unapplied (the Python
-- engine's, granted only to the roles that run it) to 'python'
-- (sql/functions/events.sql); nothing a session set reaches it. (The store's owner inserting into
-- pge_events itself is not guarded: it owns the table.)
create or replace function pge_python_inline_guard() returns trigger
language plpgsql
as $$
begin
    if coalesce(current_setting('jsproj.inline_engine', true), '') <> 'python' then
        raise exception using errcode = 'JP503', message = format(
            'projections %s are updated inline by the Python engine, which only jsproj''s Python appends run: '
            'append through it (EventStore.append, jsproj append), or deploy them with an in-database engine '
            'for every client (jsproj deploy --engine pljs or plv8, which need no superuser; or plpython)',
            (select string_agg(name, ', ' order by name) from @schema@.pge_projection_definitions
             where lifecycle = 'inline' and engine = 'python'));
    end if;
    return null;
end;
$$;

-- Append as the Python engine does, in one round trip: the append, its events
-- as engine records, the deployment generation (to notice a redeploy), and
-- the documents the Python-engine inline projections route to by rule, locked.
-- The events are the stream's newest (its version and the count just
-- written), read as pge_append_message finds a stream's version: by the
-- (stream_id, version) index, from a plan PL/pgSQL keeps for the session
-- (planning it at each call, as EXECUTE would, cost a fifth of the append).
create or replace function pge_append_records(message jsonb, out result jsonb, out records text,
                                              out generation bigint, out documents jsonb)
language plpgsql
as $$
declare
    v_projections text[];
begin
    if jsonb_typeof(message) = 'array' then  -- one message (a batch's records come by pages: appending.py)
        raise exception using errcode = 'JP400', message = @schema@.pge_message_problem(message);
    end if;
    result := @schema@.pge_append_unapplied(message);
    select g.generation, array(select d.name from @schema@.pge_projection_definitions d
                               where d.lifecycle = 'inline' and d.engine = 'python')
    into generation, v_projections from @schema@.pge_engine g;
    select '[' || string_agg(r.record, ',' order by r.position) || ']',
           @schema@.pge_load_documents(@schema@.pge_route(array_agg(r.stream_id), array_agg(r.stream_type),
                                                          array_agg(r.type), v_projections))
    into records, documents
    from @schema@.pge_records() r
    where r.stream_id = result ->> 'streamId'
      and r.version > (result ->> 'version')::bigint - jsonb_array_length(result -> 'positions');
end;
$$;
