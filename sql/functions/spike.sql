-- The original Postgres.Projections spike's SQL API (its lib/sql/functions.sql,
-- which its client calls), on jsproj's store: docs/compat.md says what maps to
-- what and where jsproj is stricter. Every function is a thin layer over
-- jsproj's own (pge_append, the document tables), so the rules are the same:
-- a stream's type cannot change, unknown message fields are refused,
-- duplicate event ids are JP400, and while Python-engine inline projections
-- are deployed an append here is refused with JP503 like any SQL append.
-- The spike's ids were uuids and jsproj's are text: each function takes
-- text, and a uuid overload passes its text on (an untyped parameter, as
-- the spike's client sends, resolves to the text one).
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/store/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name (qualified names instead of a SET search_path
-- clause, which costs ~100 us per call). A signature change is a migration
-- that drops the old function.

-- Append a message (jsproj's append message, the spike's too) and answer as
-- the spike did: {"id": stream id, "version": the stream's new version}. Its
-- client reads `id` to fetch a stream whose id was assigned.
create or replace function pge_append_event(message json) returns json
language plpgsql
as $$
begin
    if json_typeof(message) = 'array' then  -- one message: the spike had no batches (pge_append's are jsproj's)
        raise exception using errcode = 'JP400', message = @schema@.pge_message_problem(message::jsonb);
    end if;
    return (select json_build_object('id', r ->> 'streamId', 'version', (r ->> 'version')::bigint)
            from @schema@.pge_append(message::jsonb) as r);
end;
$$;

-- A stream as the spike returned it: {"id", "type", "version", "events": [each
-- event as appended, "$type" and "$id" first]}, in version order; null for a
-- stream that does not exist. Built as json text (not jsonb), which keeps the
-- order of the keys.
create or replace function pge_fetch_stream(id text) returns json
language sql stable
as $$
    select json_build_object('id', s.id, 'type', s.type, 'version', coalesce(max(e.version), 0),
           'events', coalesce(json_agg(concat('{"$type":', to_json(e.type), ',"$id":"', e.id, '"',
                                              case when e.data = '{}'::jsonb then '}' else ',' || substr(e.data::text, 2) end
                                             )::json order by e.version) filter (where e.id is not null), '[]'::json))
    from @schema@.pge_streams s
    left join @schema@.pge_events e on e.stream_id = s.id
    where s.id = pge_fetch_stream.id and s.archived_at is null  -- an archived stream reads as none (docs/lifecycle.md)
    group by s.id, s.type
$$;

create or replace function pge_fetch_stream(id uuid) returns json
language sql stable
as $$ select @schema@.pge_fetch_stream(id::text) $$;

-- A stored projection's document: a stream or event projection's or a view's
-- by id, an aggregate's by its name (the id is not used); null when there is
-- none. An unknown projection is an error (JP404), where the spike answered
-- null: a misspelt name should not look like a missing document.
create or replace function pge_find_view(id text, view_name text) returns json
language plpgsql stable
as $$
declare
    v_table text := @schema@.pge_document_table(view_name);
    v_document json;
begin
    if v_table is null then
        raise exception using errcode = 'JP404', message = format('there is no deployed projection %s', view_name);
    elsif v_table = 'pge_aggregates' then
        select a.data::json into v_document from @schema@.pge_aggregates a where a.name = view_name;
    else
        execute format('select d.data::json from @schema@.%I d where d.id = $1', v_table) into v_document using id;
    end if;
    return v_document;
end;
$$;

create or replace function pge_find_view(id uuid, view_name text) returns json
language sql stable
as $$ select @schema@.pge_find_view(id::text, view_name) $$;

-- Empty the store's data, as the spike's tests do between scenarios: every
-- stream and event, every aggregate and view document, and the dead letters
-- of the events that go. Definitions and async progress stay: positions are
-- never reused (DELETE, not TRUNCATE ... RESTART IDENTITY), so a daemon's
-- position stays right. Only a role that may delete from those tables (the
-- owner) can run it.
create or replace function pge_clean_all_events() returns void
language plpgsql
as $$
declare
    v_table text;
begin
    for v_table in select distinct @schema@.pge_document_table(d.name) from @schema@.pge_projection_definitions d
                   where d.lifecycle <> 'live' loop
        execute format('delete from @schema@.%I', v_table);
    end loop;
    delete from @schema@.pge_aggregates;
    delete from @schema@.pge_dead_letters;
    delete from @schema@.pge_events;
    delete from @schema@.pge_streams;
end;
$$;
