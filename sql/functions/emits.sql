-- Events projections write (KurrentDB's emit and linkTo: js/lib/emits.js,
-- docs/from-kurrentdb.md#emit-and-linkto), appended exactly once.
--
-- The engine hands them over with a page's changes, per projection
-- ({name: {..., emits: [{causedBy, index, streamId, eventType, data,
-- metadata}]}}). The daemon appends them in the transaction that writes the
-- page and moves the projection's progress (pge_commit_page), so a page is
-- either committed with its emits or not at all; and each event's id is
-- made of the projection, the source event and the emit's index, so that
-- a page applied again after a crash, or a rebuild, finds the events it
-- emitted before already stored and appends nothing twice.

-- The id of the `index`-th event `projection` emitted for event `caused_by`:
-- a name-based UUID (RFC 9562 version 3: MD5 of a namespace and the name
-- "<store key>/<projection>/<hash>/<caused_by>/<index>"), what Python's uuid.uuid3
-- gives for jsproj's namespace 5c0f2f5e-3b1d-4f6a-9c3e-6d1b7a2e9f40. The
-- store's key (pge_emit_key, the owner's alone) makes it unpredictable to
-- anyone else, who could otherwise take the id first; the definition's hash
-- (its code and input: deploy.py's input_hash) makes a changed projection's
-- events new ones, never taken for what the code before it emitted.
create or replace function pge_emitted_id(key uuid, projection text, hash text, caused_by text, index int) returns uuid
language sql immutable parallel safe
as $$
    select (substr(h, 1, 12) || '3' || substr(h, 14, 3)
            || substr('89ab', (('x' || substr(h, 17, 1))::bit(4)::int & 3) + 1, 1) || substr(h, 18))::uuid
    from md5(decode('5c0f2f5e3b1d4f6a9c3e6d1b7a2e9f40', 'hex')
             || convert_to(key || '/' || projection || '/' || hash || '/' || lower(caused_by) || '/' || index, 'UTF8')) as h
$$;

-- $projection and $emitDepth in metadata are what mark an event a projection
-- emitted (js/lib/emits.js): the entries of applications (pge_append,
-- pge_append_unapplied) refuse them, so that no application's event passes
-- for a projection's, nor ends an emit chain early with a depth of its
-- choosing. (In lax mode, `$.metadata` reads each message of a batch too.)
create or replace function pge_refuse_emit_metadata(message jsonb) returns void
language plpgsql immutable
as $$
begin
    if jsonb_path_exists(message, '$.metadata ? (exists (@."$projection") || exists (@."$emitDepth"))') then
        raise exception using errcode = 'JP400', message =
            'metadata keys $projection and $emitDepth mark the events projections emit: an append may not give them';
    end if;
end;
$$;

-- Append the events a page's changes emit (those not stored yet) and return
-- how many it appended. Each goes to its stream as its own message (no
-- expected version: the stream is the projection's to write), the stream
-- type being its category (what `jsproj import kurrentdb` gives a stream).
-- Only a projection deployed with the emit permission, async, may: any
-- other is refused (JP403), and nothing of the page is written.
--
-- SECURITY DEFINER, like pge_append: it appends with the owner's rights, for
-- the daemon's role (granted EXECUTE on it when it is not the owner); it
-- sets what pge_append sets, so nothing a session set reaches the append.
create or replace function pge_append_emitted(changes jsonb) returns int
language plpgsql
security definer set search_path = pg_catalog, pg_temp
as $$
declare
    v_refused text;
    v_messages jsonb;
begin
    select string_agg(c.key, ', ' order by c.key) into v_refused
    from jsonb_each(changes) c
    left join @schema@.pge_projection_definitions d on d.name = c.key
    where c.value ? 'emits'
      and not (d.lifecycle = 'async' and d.emits);
    if v_refused is not null then
        raise exception using errcode = 'JP403', message = format(
            'projections %s wrote events (emit, linkTo) without the permission: deploy them async with --emit',
            v_refused);
    end if;
    -- (EXECUTE: planned at each call, as pge_append_message's own look-up of ids; a plan cached while
    -- pge_events was small would scan it.)
    execute $q$
    select jsonb_agg(jsonb_build_object(
               'id', e.value ->> 'streamId',
               'type', coalesce(nullif(split_part(e.value ->> 'streamId', '-', 1), ''), e.value ->> 'streamId'),
               'data', jsonb_build_array((e.value -> 'data')
                                         || jsonb_build_object('$type', e.value ->> 'eventType', '$id', e.id)),
               'metadata', e.value -> 'metadata') order by e.name, e.n)
    from (select c.key as name, t.n, t.value,
                 @schema@.pge_emitted_id(k.key, c.key, d.hash, t.value ->> 'causedBy', (t.value ->> 'index')::int) as id
          from @schema@.pge_emit_key k, jsonb_each($1) c
          join @schema@.pge_projection_definitions d on d.name = c.key,
               jsonb_array_elements(c.value -> 'emits') with ordinality as t (value, n)
          where c.value ? 'emits') as e
    where not exists (select from @schema@.pge_events s where s.id = e.id)
    $q$ into v_messages using changes;
    if v_messages is null then
        return 0;
    end if;
    perform set_config('jsproj.inline_engine', '', true);
    perform @schema@.pge_append_message(v_messages);
    return jsonb_array_length(v_messages);
end;
$$;

revoke execute on function pge_append_emitted(jsonb) from public;

comment on function pge_append_emitted(jsonb) is
    'jsproj: append the events a page''s changes emit ({name: {emits: [...]}}), each once (ids made of the projection, the source event and the index); the daemon''s';
