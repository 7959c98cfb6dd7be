-- Differential testing of the two engines (issue 16, item 4).
--
-- Loaded into both installs (after sql/tests/setup/helpers.sql) by .ci/differential.sh. The
-- generator is seeded (setseed/random), so it writes the same histories into both databases; the
-- runner applies each step in its own transaction (so created_at orders sessions as in real
-- use); the report prints every step's result and every session and ledger row of the run in a
-- canonical text form, one line each, prefixed with the history number. The driver diffs the two
-- reports: any difference is a failure.
--
-- A history is one to three LiveKit room instances: room_started, participant_joined/left
-- (also of the EGRESS participant), track_published, egress_started/updated/ended with every
-- status, ties on updatedAt, a second egress, syncd's own events, duplicates (same id) and
-- restatements (same state, new id), both key styles (also mixed, and camelCase null with a
-- snake_case value), int64 as strings, numbers and padded strings, odd but valid values, a few
-- malformed events, fred_upsert_session/fred_persist_transcript through fred_test.rpc as
-- authenticated users and as service_role, the transcript caps moved (in range), the stale job,
-- HeadObject results, retention and lost egresses, all in causal, nearly causal or shuffled order.
--
-- Histories are independent: history h uses room names room-h<h>-*, sids RM_h<h>_*, event ids
-- *_h<h>_*, and times around 2025-06-01 minus 2h days (the stale job only reaches its own
-- history's sessions).

create schema fred_diff;

create table fred_diff.steps (
  h       integer not null,
  n       integer not null,
  kind    text not null,
  payload jsonb not null,
  primary key (h, n)
);
create table fred_diff.results (
  h      integer not null,
  n      integer not null,
  result text not null,
  primary key (h, n)
);
create table fred_diff.meta (k text primary key, v text not null);

-- Randomness: everything below draws from random() in a fixed order after setseed().
create function fred_diff.r(n integer) returns integer
language sql volatile as $$ select floor(random() * n)::integer $$;

create function fred_diff.p(x double precision) returns boolean
language sql volatile as $$ select random() < x $$;

create function fred_diff.pick(a anyarray) returns anyelement
language sql volatile as $$ select a[1 + floor(random() * array_length(a, 1))::integer] $$;

-- An int64 the way LiveKit's encoders and SDKs write it: a string, a number, or (rarely) a
-- padded or signed string that protobuf's parsers still accept.
create function fred_diff.i64(v bigint) returns jsonb
language plpgsql volatile as $$
declare
  x double precision := random();
begin
  if x < 0.6 or v < 0 then
    return to_jsonb(v::text);
  elsif x < 0.94 then
    return to_jsonb(v);
  elsif x < 0.97 then
    return to_jsonb('000' || v::text);
  end if;
  return to_jsonb('+' || v::text);
end
$$;

create function fred_diff.snake(k text) returns text
language sql immutable as $$ select lower(regexp_replace(k, '([A-Z])', '_\1', 'g')) $$;

-- Rewrites the keys of a camelCase body: 'camel' keeps them, 'snake' converts all, 'mixed'
-- converts each with probability 1/2 and sometimes sends camelCase null next to the snake_case value.
create function fred_diff.restyle(j jsonb, mode text) returns jsonb
language plpgsql volatile as $$
declare
  k   text;
  v   jsonb;
  out jsonb;
  s   text;
begin
  if mode = 'camel' then
    return j;
  end if;
  if jsonb_typeof(j) = 'array' then
    select coalesce(jsonb_agg(fred_diff.restyle(e, mode) order by i), '[]') into out
      from jsonb_array_elements(j) with ordinality a(e, i);
    return out;
  end if;
  if jsonb_typeof(j) <> 'object' then
    return j;
  end if;
  out := '{}';
  for k, v in select e.key, e.value from jsonb_each(j) e order by e.key loop
    s := fred_diff.snake(k);
    v := fred_diff.restyle(v, mode);
    if s = k or k in ('event', 'id') then
      out := out || jsonb_build_object(k, v);
    elsif mode = 'snake' then
      out := out || jsonb_build_object(s, v);
    elsif fred_diff.p(0.1) then
      out := out || jsonb_build_object(k, null, s, v);
    elsif fred_diff.p(0.5) then
      out := out || jsonb_build_object(s, v);
    else
      out := out || jsonb_build_object(k, v);
    end if;
  end loop;
  return out;
end
$$;

-- The room object of an event.
create function fred_diff.room(sid text, name text, t0 bigint, meta text, full_room boolean) returns jsonb
language plpgsql volatile as $$
declare
  o jsonb := '{}';
begin
  if sid is not null then o := o || jsonb_build_object('sid', sid); end if;
  if name is not null then o := o || jsonb_build_object('name', name); end if;
  if full_room then
    if fred_diff.p(0.5) then
      o := o || jsonb_build_object('creationTime', fred_diff.i64(t0));
    end if;
    if fred_diff.p(0.6) then
      o := o || jsonb_build_object('creationTimeMs', fred_diff.i64(t0 * 1000 + fred_diff.r(1000)));
    end if;
    if meta is not null then o := o || jsonb_build_object('metadata', meta); end if;
    o := o || jsonb_build_object('emptyTimeout', 300, 'departureTimeout', 20);
    if fred_diff.p(0.2) then o := o || '{"numParticipants": 0, "activeRecording": false}'; end if;
  end if;
  return o;
end
$$;

-- The egressInfo of an egress event in state `status`.
create function fred_diff.egress_info(egress_id text, sid text, name text, status text, updated_ns bigint, flavour integer)
returns jsonb
language plpgsql volatile as $$
declare
  names  text[] := array['EGRESS_STARTING', 'EGRESS_ACTIVE', 'EGRESS_ENDING', 'EGRESS_COMPLETE',
                         'EGRESS_FAILED', 'EGRESS_ABORTED', 'EGRESS_LIMIT_REACHED'];
  o      jsonb := '{}';
  s3     jsonb;
  req    jsonb;
  fr     jsonb := '{}';
  endpoint text := fred_diff.pick(array['https://proj.supabase.co/storage/v1/s3', 'https://proj.supabase.co/storage/v1/s3/',
                                        'http://127.0.0.1:9000']);
  fname  text := name || '/' || flavour || '.ogg';
begin
  if egress_id is not null then o := o || jsonb_build_object('egressId', egress_id); end if;
  if sid is not null and fred_diff.p(0.8) then o := o || jsonb_build_object('roomId', sid); end if;
  if fred_diff.p(0.8) then o := o || jsonb_build_object('roomName', name); end if;
  -- The status: absent means STARTING (proto3 default), else a name or its number.
  if not (status = 'EGRESS_STARTING' and fred_diff.p(0.4)) then
    o := o || jsonb_build_object('status',
      case when fred_diff.p(0.25) then to_jsonb(array_position(names, status) - 1) else to_jsonb(status) end);
  end if;
  if updated_ns is not null then o := o || jsonb_build_object('updatedAt', fred_diff.i64(updated_ns)); end if;
  o := o || jsonb_build_object('startedAt', fred_diff.i64(updated_ns - 1000), 'sourceType', 'EGRESS_SOURCE_TYPE_SDK');
  -- The echoed request and its S3 output.
  s3 := jsonb_build_object('accessKey', 'k', 'secret', 's', 'region', 'eu-central-1', 'forcePathStyle', true);
  if fred_diff.p(0.9) then s3 := s3 || jsonb_build_object('endpoint', endpoint); end if;
  if fred_diff.p(0.9) then s3 := s3 || jsonb_build_object('bucket', fred_diff.pick(array['voice-recordings', 'other-bucket'])); end if;
  if fred_diff.p(0.7) then
    req := jsonb_build_object('fileOutputs', jsonb_build_array(jsonb_build_object('fileType', 'OGG', 'filepath', '{room_name}/{time}.ogg', 's3', s3)));
  elsif fred_diff.p(0.6) then
    req := jsonb_build_object('file', jsonb_build_object('filepath', 'x.ogg', 's3', s3));
  else
    req := jsonb_build_object('fileOutputs', '[]'::jsonb);
  end if;
  if fred_diff.p(0.9) then
    o := o || jsonb_build_object(fred_diff.pick(array['roomComposite', 'web', 'participant', 'trackComposite', 'track']),
                                 req || jsonb_build_object('roomName', name, 'audioOnly', true));
  end if;
  -- The file result.
  if fred_diff.p(0.85) then fr := fr || jsonb_build_object('filename', fname); end if;
  if status in ('EGRESS_COMPLETE', 'EGRESS_LIMIT_REACHED', 'EGRESS_FAILED') then
    if fred_diff.p(0.6) then fr := fr || jsonb_build_object('location', rtrim(endpoint, '/') || '/loc/' || fname); end if;
    fr := fr || jsonb_build_object('size', fred_diff.i64(fred_diff.pick(array[0, 1, 4718592, 9007199254740993])),
                                   'duration', fred_diff.i64(fred_diff.pick(array[0, 999999, 294000000000, 1000000])));
  end if;
  if fr <> '{}' then
    if fred_diff.p(0.8) then
      o := o || jsonb_build_object('fileResults', jsonb_build_array(fr) || case when fred_diff.p(0.2) then jsonb_build_array(jsonb_build_object('filename', 'second.ogg')) else '[]' end);
    else
      o := o || jsonb_build_object('file', fr);
    end if;
  elsif fred_diff.p(0.2) then
    o := o || jsonb_build_object('fileResults', '[]'::jsonb);
  end if;
  if status in ('EGRESS_FAILED', 'EGRESS_ABORTED') and fred_diff.p(0.6) then
    o := o || jsonb_build_object('error', fred_diff.pick(array['', 'Start signal not received', 'aborted by user']));
  end if;
  if fred_diff.p(0.5) then
    o := o || jsonb_build_object('details', fred_diff.pick(array['', 'End reason: Source closed', 'End reason: API']));
  end if;
  if fred_diff.p(0.15) then
    o := o || jsonb_build_object('backupStorageUsed', fred_diff.p(0.5));
  end if;
  return o;
end
$$;

-- A transcript: usually valid, sometimes the wrong shape or over the caps.
create function fred_diff.transcript(tag text) returns jsonb
language plpgsql volatile as $$
declare
  x double precision := random();
  n integer := 1 + fred_diff.r(6);
begin
  if x < 0.04 then
    return (select jsonb_agg(jsonb_build_object('text', 'x', 'speaker', 'a')) from generate_series(1, 501));
  elsif x < 0.08 then
    return jsonb_build_array(jsonb_build_object('text', 'a', 'speaker', 'coach'), jsonb_build_object('text', 1, 'speaker', 'u'), 3);
  elsif x < 0.10 then
    return jsonb_build_object('text', 'not an array', 'speaker', 'a');
  elsif x < 0.12 then
    return jsonb_build_array(jsonb_build_object('text', 'a', 'speaker', null, 'role', 'user'), jsonb_build_object('text', 'b'));
  elsif x < 0.14 then
    return '[]';
  end if;
  return (select jsonb_agg(case when i % 3 = 0 then jsonb_build_object('text', 'turn ' || i || ' ' || tag || ' ✓ "q"', 'role', 'user', 't', i)
                                else jsonb_build_object('text', 'turn ' || i, 'speaker', fred_diff.pick(array['coach', 'user']),
                                                        'meta', jsonb_build_object('conf', 0.5, 'n', i)) end order by i)
            from generate_series(1, n) i);
end
$$;

-- One history, written into fred_diff.steps.
create function fred_diff.gen_history(h integer) returns integer
language plpgsql volatile as $$
declare
  users   text[] := array['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222',
                          '33333333-3333-4333-8333-333333333333'];
  base    bigint := extract(epoch from timestamptz '2025-06-01 00:00:00+00')::bigint - h::bigint * 172800;
  tag     text := 'h' || h;
  ninst   integer := 1 + (case when fred_diff.p(0.3) then 1 else 0 end) + (case when fred_diff.p(0.1) then 1 else 0 end);
  same_name boolean := fred_diff.p(0.5);
  -- causal items: (order key, kind, instance, payload); shuffled below
  items   jsonb := '[]';
  k       integer;
  sid     text;
  name    text;
  owner   text;
  meta    text;
  t0      bigint;
  t       bigint;
  eg      text;
  eg2     text;
  st      text;
  sts     text[];
  finals  text[] := array['EGRESS_COMPLETE', 'EGRESS_COMPLETE', 'EGRESS_FAILED', 'EGRESS_ABORTED', 'EGRESS_LIMIT_REACHED'];
  ev      jsonb;
  upd     bigint;
  seq     integer := 0;
  i       integer;
  mode    text;
  body    jsonb;
  role    text;
  sub     text;
  order_mode integer := fred_diff.r(3);
  e       jsonb;
  n       integer;
  b       jsonb;
  cur_k   integer;
begin
  for k in 0 .. ninst - 1 loop
    sid := 'RM_' || tag || '_' || k;
    name := 'room-' || tag || '-' || case when same_name then 0 else k end;
    owner := fred_diff.pick(array[users[1], users[2], null]);
    meta := case
      when owner is not null and fred_diff.p(0.7) then jsonb_build_object('user_id', owner, 'plan', 'pro')::text
      when owner is not null and fred_diff.p(0.5) then
        case when fred_diff.p(0.25) then '{"user_id": "' || owner || '", "note": "\u0000"}' -- jsonb cannot hold NUL
             else '{"user_id": "' || upper(owner) || '"}' end
      when owner is not null then null
      else fred_diff.pick(array['not json', '{"user_id": 5}', '', '{"coach": "x"}', '["a"]', '{"user_id": "not-a-uuid"}', null]) end;
    t0 := base + k * 3600 + fred_diff.r(60);
    t := t0;

    -- The app binds the room name first (usually), as an authenticated user or service_role.
    if fred_diff.p(0.5) then
      if fred_diff.p(0.7) then
        role := 'authenticated';
        sub := coalesce(case when fred_diff.p(0.9) then owner end, fred_diff.pick(users));
        body := jsonb_build_object('room_name', name);
        if fred_diff.p(0.3) then body := body || jsonb_build_object('user_id', case when fred_diff.p(0.9) then sub else users[3] end); end if;
      else
        role := 'service_role';
        sub := null;
        body := jsonb_build_object('room_name', name);
        if owner is not null then body := body || jsonb_build_object('user_id', owner); end if;
      end if;
      if fred_diff.p(0.5) then body := body || jsonb_build_object('call_type', fred_diff.pick(array['coaching', 'check-in'])); end if;
      if fred_diff.p(0.3) then body := body || jsonb_build_object('metadata', jsonb_build_object('source', 'app', 'k', k)); end if;
      items := items || jsonb_build_object('o', t - 30, 'k', k, 'kind', 'rpc',
                                           'p', jsonb_build_object('role', role, 'sub', sub, 'fn', 'fred_upsert_session', 'body', body));
    end if;

    -- LiveKit's events of the room instance.
    if fred_diff.p(0.9) then
      items := items || jsonb_build_object('o', t, 'k', k, 'kind', 'ev', 'p', jsonb_build_object(
        'event', 'room_started', 'id', 'EV_' || tag || '_' || k || '_rs', 'createdAt', fred_diff.i64(t),
        'room', fred_diff.room(sid, name, t0, meta, true)));
    end if;
    if fred_diff.p(0.8) then
      t := t + 2;
      items := items || jsonb_build_object('o', t, 'k', k, 'kind', 'ev', 'p', jsonb_build_object(
        'event', 'participant_joined', 'id', 'EV_' || tag || '_' || k || '_pj', 'createdAt', fred_diff.i64(t),
        'room', fred_diff.room(sid, case when fred_diff.p(0.95) then name end, t0, null, false),
        'participant', jsonb_build_object('sid', 'PA_user', 'identity', 'user-1', 'joinedAt', fred_diff.i64(t),
                                          'kind', fred_diff.pick(array['"STANDARD"'::jsonb, '0'::jsonb, 'null'::jsonb])) - case when fred_diff.p(0.6) then 'kind' else '' end));
    end if;
    if fred_diff.p(0.3) then
      items := items || jsonb_build_object('o', t + 1, 'k', k, 'kind', 'ev', 'p', jsonb_build_object(
        'event', 'track_published', 'id', 'EV_' || tag || '_' || k || '_tp', 'createdAt', fred_diff.i64(t + 1),
        'room', fred_diff.room(sid, name, t0, null, false),
        'participant', jsonb_build_object('sid', 'PA_user', 'identity', 'user-1'),
        'track', jsonb_build_object('sid', 'TR_a', 'type', 'AUDIO')));
    end if;

    -- The recording: syncd's own record of starting it, then LiveKit's egress events.
    if fred_diff.p(0.8) then
      eg := 'EG_' || tag || '_' || k;
      if fred_diff.p(0.5) then
        items := items || jsonb_build_object('o', t0 + 1, 'k', k, 'kind', 'ev', 'p', case fred_diff.r(6)
          when 0 then jsonb_build_object('event', 'syncd_egress_failed', 'id', 'SY_' || tag || '_' || k || '_f',
                                         'room', jsonb_build_object('sid', sid, 'name', name), 'error', 'twirp error: unavailable')
          when 1 then jsonb_build_object('event', 'syncd_recording_disabled', 'id', 'SY_' || tag || '_' || k || '_d',
                                         'room', jsonb_build_object('sid', sid, 'name', name))
          else jsonb_build_object('event', 'syncd_egress_started', 'id', 'SY_' || tag || '_' || k || '_s',
                                  'room', jsonb_build_object('sid', sid) || case when fred_diff.p(0.8) then jsonb_build_object('name', name) else '{}' end,
                                  'egress_id', eg) end);
      end if;
      if fred_diff.p(0.5) then
        items := items || jsonb_build_object('o', t0 + 4, 'k', k, 'kind', 'ev', 'p', jsonb_build_object(
          'event', 'participant_joined', 'id', 'EV_' || tag || '_' || k || '_pe', 'createdAt', fred_diff.i64(t0 + 4),
          'room', fred_diff.room(sid, name, t0, null, false),
          'participant', jsonb_build_object('sid', 'PA_' || eg, 'identity', eg,
                                            'kind', fred_diff.pick(array['"EGRESS"'::jsonb, '3'::jsonb, '3.0'::jsonb, '3e0'::jsonb]))));
      end if;
      sts := array['EGRESS_STARTING'];
      if fred_diff.p(0.8) then sts := sts || 'EGRESS_ACTIVE'::text; end if;
      if fred_diff.p(0.3) then sts := sts || 'EGRESS_ENDING'::text; end if;
      if fred_diff.p(0.85) then sts := sts || fred_diff.pick(finals); end if;
      -- A tie: the same rank again, at the same updatedAt or a later one.
      if fred_diff.p(0.25) then
        st := sts[1 + fred_diff.r(array_length(sts, 1))];
        if fred_diff.ev_rank(st) = 3 then st := fred_diff.pick(finals); end if;
        sts := sts || st;
      end if;
      upd := (t0 + 5) * 1000000000 + fred_diff.r(1000000000);
      i := 0;
      foreach st in array sts loop
        i := i + 1;
        if i > 1 and not (i = array_length(sts, 1) and array_length(sts, 1) > 1 and fred_diff.p(0.5)
                          and fred_diff.ev_rank(st) = fred_diff.ev_rank(sts[i - 1])) then
          upd := upd + 1 + fred_diff.r(5)::bigint * 1000000000;
        end if;
        items := items || jsonb_build_object('o', upd / 1000000000, 'k', k, 'kind', 'ev', 'p', jsonb_build_object(
          'event', case when i = 1 then 'egress_started' when fred_diff.ev_rank(st) = 3 then 'egress_ended' else 'egress_updated' end,
          'id', 'EV_' || tag || '_' || k || '_eg' || i, 'createdAt', fred_diff.i64(upd / 1000000000),
          'egressInfo', fred_diff.egress_info(eg, sid, name, st, case when fred_diff.p(0.95) then upd end, i))
          || case when fred_diff.p(0.85) then jsonb_build_object('room', fred_diff.room(sid, name, t0, null, false)) else '{}' end);
      end loop;
      -- A second egress for the same room: the session follows the first it learns of.
      if fred_diff.p(0.1) then
        eg2 := eg || '_b';
        items := items || jsonb_build_object('o', t0 + 9, 'k', k, 'kind', 'ev', 'p', jsonb_build_object(
          'event', 'egress_ended', 'id', 'EV_' || tag || '_' || k || '_eg2', 'createdAt', fred_diff.i64(t0 + 9),
          'room', fred_diff.room(sid, name, t0, null, false),
          'egressInfo', fred_diff.egress_info(eg2, sid, name, fred_diff.pick(finals), (t0 + 9) * 1000000000, 9)));
      end if;
    end if;

    t := t0 + 300 + fred_diff.r(300);
    if fred_diff.p(0.7) then
      items := items || jsonb_build_object('o', t, 'k', k, 'kind', 'ev', 'p', jsonb_build_object(
        'event', 'participant_left', 'id', 'EV_' || tag || '_' || k || '_pl', 'createdAt', fred_diff.i64(t),
        'room', fred_diff.room(sid, name, t0, null, false),
        'participant', jsonb_build_object('sid', 'PA_user', 'identity', 'user-1')));
    end if;
    -- The stale job, before or after the room's end.
    if fred_diff.p(0.15) then
      items := items || jsonb_build_object('o', t + 1, 'k', k, 'kind', 'stale',
                                           'p', jsonb_build_object('before', t0 + fred_diff.r(900)));
    end if;
    if fred_diff.p(0.8) then
      t := t + 10;
      items := items || jsonb_build_object('o', t, 'k', k, 'kind', 'ev', 'p', jsonb_build_object(
        'event', 'room_finished', 'id', 'EV_' || tag || '_' || k || '_rf', 'createdAt', fred_diff.i64(t),
        'room', fred_diff.room(sid, name, t0, meta, true)));
    end if;

    -- The agent persists after the call (sometimes during it), possibly twice.
    for i in 1 .. (case when fred_diff.p(0.7) then 1 else 0 end) + (case when fred_diff.p(0.2) then 1 else 0 end) loop
      if fred_diff.p(0.6) then
        role := 'authenticated';
        sub := coalesce(case when fred_diff.p(0.85) then owner end, fred_diff.pick(users));
      else
        role := 'service_role';
        sub := null;
      end if;
      body := jsonb_build_object('room_name', name, 'transcript', fred_diff.transcript(tag));
      if fred_diff.p(0.6) then body := body || jsonb_build_object('summary', 'summary ' || i); end if;
      if fred_diff.p(0.4) then body := body || jsonb_build_object('decisions', jsonb_build_array('d' || i)); end if;
      if fred_diff.p(0.4) then body := body || jsonb_build_object('next_actions', jsonb_build_array(jsonb_build_object('a', i))); end if;
      if fred_diff.p(0.3) then body := body || jsonb_build_object('call_type', fred_diff.pick(array['coaching', 'review'])); end if;
      b := jsonb_build_object('role', role, 'sub', sub, 'fn', 'fred_persist_transcript', 'body', body);
      -- The caps, moved within their ranges (both installs accept these values).
      if fred_diff.p(0.08) then
        b := b || jsonb_build_object('caps', jsonb_build_object('fred.max_transcript_entries', fred_diff.pick(array['1', '3', '100000']),
                                                                'fred.max_transcript_bytes', fred_diff.pick(array['1024', '1048576', '2000'])));
      end if;
      items := items || jsonb_build_object('o', case when fred_diff.p(0.8) then t + 5 + i else t0 + 100 end, 'k', k, 'kind', 'rpc', 'p', b);
    end loop;

    -- syncd's later word on the recording: HeadObject, retention, a lost egress.
    if eg is not null and fred_diff.p(0.3) then
      items := items || jsonb_build_object('o', t + 20, 'k', k, 'kind', fred_diff.pick(array['verify', 'verify', 'delete', 'lost']),
                                           'p', jsonb_build_object('sid', sid, 'found', fred_diff.p(0.7), 'bytes', 1234));
    end if;

    -- A malformed event now and then: both engines must refuse it alike.
    if fred_diff.p(0.06) then
      items := items || jsonb_build_object('o', t0 + 50, 'k', k, 'kind', 'ev', 'p', case fred_diff.r(9)
        when 0 then jsonb_build_object('event', 'egress_updated', 'id', 'EV_' || tag || '_' || k || '_x0', 'room', jsonb_build_object('sid', sid),
                                       'egressInfo', jsonb_build_object('status', 'EGRESS_BOGUS'))
        when 1 then jsonb_build_object('event', 'room_started', 'id', 'EV_' || tag || '_' || k || '_x1', 'createdAt', 'soon', 'room', jsonb_build_object('sid', sid))
        when 2 then jsonb_build_object('event', 'participant_joined', 'id', 'EV_' || tag || '_' || k || '_x2', 'room', jsonb_build_object('sid', sid), 'participant', 'x')
        when 3 then jsonb_build_object('event', 'room_started', 'id', 'EV_' || tag || '_' || k || '_x3', 'room', jsonb_build_object('name', repeat('n', 257)))
        when 4 then jsonb_build_object('event', 'egress_ended', 'id', 'EV_' || tag || '_' || k || '_x4', 'room', jsonb_build_object('sid', sid))
        when 5 then jsonb_build_object('event', 'egress_ended', 'id', 'EV_' || tag || '_' || k || '_x5', 'room', jsonb_build_object('sid', sid),
                                       'egressInfo', jsonb_build_object('status', 7, 'backupStorageUsed', 'yes'))
        when 6 then jsonb_build_object('event', 'room_finished', 'id', 'EV_' || tag || '_' || k || '_x6')
        when 7 then jsonb_build_object('event', 'room_started', 'room', jsonb_build_object('sid', sid))
        else jsonb_build_object('event', 'syncd_egress_started', 'id', 'SY_' || tag || '_' || k || '_x8', 'room', jsonb_build_object('name', name)) end);
    end if;
  end loop;

  -- Restatements (the same state under a new id) and duplicates (the same id again).
  n := jsonb_array_length(items);
  for i in 0 .. n - 1 loop
    e := items -> i;
    continue when e ->> 'kind' <> 'ev';
    if fred_diff.p(0.08) then
      items := items || jsonb_set(e, '{p,id}', to_jsonb((e #>> '{p,id}') || '_again'));
    end if;
    if fred_diff.p(0.2) then
      items := items || (e || jsonb_build_object('o', (e ->> 'o')::bigint + fred_diff.r(600)));
    end if;
  end loop;

  -- Order: causal, nearly causal (a few neighbours swapped) or shuffled.
  if order_mode = 0 then
    select coalesce(jsonb_agg(x order by (x ->> 'o')::bigint, ord), '[]') into items from jsonb_array_elements(items) with ordinality a(x, ord);
  elsif order_mode = 1 then
    select coalesce(jsonb_agg(x order by (x ->> 'o')::bigint + fred_diff.r(30), ord), '[]') into items from jsonb_array_elements(items) with ordinality a(x, ord);
  else
    select coalesce(jsonb_agg(x order by fred_diff.r(1000000), ord), '[]') into items from jsonb_array_elements(items) with ordinality a(x, ord);
  end if;

  -- Key styles, then steps: LiveKit and syncd events one at a time (as the daemon's owner,
  -- service_role or fred_syncd), or in batches of one room instance through apply_livekit_events.
  b := null;
  cur_k := null;
  for i in 0 .. jsonb_array_length(items) - 1 loop
    e := items -> i;
    if e ->> 'kind' = 'ev' then
      mode := fred_diff.pick(array['camel', 'camel', 'camel', 'snake', 'mixed']);
      ev := case when e #>> '{p,event}' like 'syncd\_%' then e -> 'p' else fred_diff.restyle(e -> 'p', mode) end;
      if b is not null and cur_k = (e ->> 'k')::integer and jsonb_array_length(b) < 5 and fred_diff.p(0.6) then
        b := b || jsonb_build_array(ev);
        continue;
      end if;
      if b is not null then
        seq := seq + 1;
        insert into fred_diff.steps values (h, seq, 'batch', b);
        b := null;
      end if;
      if fred_diff.p(0.4) or ev ->> 'event' like 'syncd\_%' then
        b := jsonb_build_array(ev);
        cur_k := (e ->> 'k')::integer;
      else
        seq := seq + 1;
        insert into fred_diff.steps values (h, seq, fred_diff.pick(array['ev', 'ev', 'ev_service']), ev);
      end if;
    else
      if b is not null then
        seq := seq + 1;
        insert into fred_diff.steps values (h, seq, 'batch', b);
        b := null;
      end if;
      seq := seq + 1;
      insert into fred_diff.steps values (h, seq, e ->> 'kind', e -> 'p');
    end if;
  end loop;
  if b is not null then
    seq := seq + 1;
    insert into fred_diff.steps values (h, seq, 'batch', b);
  end if;
  return seq;
end
$$;

create function fred_diff.ev_rank(status text) returns integer
language sql immutable as $$
  select case status when 'EGRESS_STARTING' then 0 when 'EGRESS_ACTIVE' then 1 when 'EGRESS_ENDING' then 2 else 3 end
$$;

-- The seed of history h of a run: a value for setseed() derived from the run's seed, so any
-- history can be regenerated on its own.
create function fred_diff.history_seed(seed bigint, h integer) returns double precision
language sql immutable as $$
  select (abs(hashtextextended(seed::text || ':' || h::text, 0)) % 2000000000)::double precision / 1000000000.0 - 1.0
$$;

create function fred_diff.generate(seed bigint, histories integer, first integer default 0) returns bigint
language plpgsql volatile as $$
declare
  h integer;
begin
  delete from fred_diff.steps;
  delete from fred_diff.results;
  for h in first .. first + histories - 1 loop
    perform setseed(fred_diff.history_seed(seed, h));
    perform fred_diff.gen_history(h);
  end loop;
  return (select count(*) from fred_diff.steps);
end
$$;

-- The session a step names by room sid (for syncd's calls that take a session id).
create function fred_diff.session_by_sid(sid text) returns uuid
language sql stable as $$ select s.id from fred.coaching_sessions s where s.room_sid = sid $$;

-- Applies one step; its result (or SQLSTATE) goes to fred_diff.results.
create function fred_diff.exec_step(p_h integer, p_n integer) returns void
language plpgsql volatile as $$
declare
  s   fred_diff.steps;
  r   text;
  k   text;
  v   text;
begin
  select * into s from fred_diff.steps where h = p_h and n = p_n;
  begin
    case s.kind
      when 'ev' then
        r := fred.apply_livekit_event(s.payload);
      when 'ev_service' then
        perform set_config('role', 'service_role', true);
        r := fred.apply_livekit_event(s.payload);
        perform set_config('role', 'none', true);
      when 'batch' then
        perform set_config('role', 'fred_syncd', true);
        select string_agg(b.idx || ':' || coalesce(b.result, '') || coalesce(':' || b.error_code, ''), ' ' order by b.idx) into r
          from fred.apply_livekit_events(s.payload) b;
        perform set_config('role', 'none', true);
      when 'rpc' then
        for k, v in select e.key, e.value from jsonb_each_text(coalesce(s.payload -> 'caps', '{}')) e loop
          perform set_config(k, v, true);
        end loop;
        r := fred_test.rpc(s.payload ->> 'role', s.payload ->> 'sub', s.payload ->> 'fn', s.payload -> 'body')::text;
      when 'stale' then
        r := fred.close_stale_sessions(now() - to_timestamp((s.payload ->> 'before')::double precision))::text;
      when 'verify' then
        r := coalesce(fred.record_verification(fred_diff.session_by_sid(s.payload ->> 'sid'), (s.payload ->> 'found')::boolean,
                                               (s.payload ->> 'bytes')::bigint), 'null');
      when 'delete' then
        r := fred.mark_recording_deleted(fred_diff.session_by_sid(s.payload ->> 'sid'))::text;
      when 'lost' then
        r := fred.mark_egress_lost(fred_diff.session_by_sid(s.payload ->> 'sid'), 'egress not found')::text;
    end case;
  exception when others then
    r := 'ERROR ' || sqlstate;
  end;
  insert into fred_diff.results values (p_h, p_n, coalesce(r, 'null'));
end
$$;

-- Runs every generated step in order, each in its own transaction (so each session gets its own
-- created_at, as with real requests). Call outside a transaction block.
create procedure fred_diff.run()
language plpgsql as $$
declare
  s record;
begin
  insert into fred_diff.meta values ('started', now()::text) on conflict (k) do update set v = excluded.v;
  commit;
  for s in select h, n from fred_diff.steps order by h, n loop
    perform fred_diff.exec_step(s.h, s.n);
    commit;
  end loop;
end
$$;

-- A value for the report: session ids become the session's natural key; times set from now()
-- (events without createdAt, syncd's own ledger rows) become NOW.
create function fred_diff.canon(j jsonb) returns jsonb
language plpgsql stable as $$
declare
  t0  timestamptz := (select v::timestamptz from fred_diff.meta where k = 'started');
  out jsonb := '{}';
  k   text;
  v   jsonb;
begin
  for k, v in select e.key, e.value from jsonb_each(j) e loop
    if jsonb_typeof(v) = 'string' and v #>> '{}' ~ '^\d{4}-\d\d-\d\dT' then
      begin
        if (v #>> '{}')::timestamptz >= t0 then
          v := '"NOW"';
        end if;
      exception when others then
        null;
      end;
    end if;
    out := out || jsonb_build_object(k, v);
  end loop;
  if out ->> 'started_at' = 'NOW' or out ->> 'ended_at' = 'NOW' then
    out := out || '{"duration_seconds": "NOW"}';
  end if;
  return out;
end
$$;

-- Every session, keyed by (room name, room sid, rank among its name's sessions by creation).
create view fred_diff.session_keys as
  select s.id,
         s.room_name || ' sid=' || coalesce(s.room_sid, '-') || ' #'
           || row_number() over (partition by s.room_name order by s.created_at, s.room_sid nulls last) as key,
         coalesce(substring(s.room_name from '^(?:room-|RM_)h([0-9]+)'), substring(s.room_sid from '^RM_h([0-9]+)'), '-1')::integer as h
    from fred.coaching_sessions s;

create function fred_diff.result_text(r text) returns text
language plpgsql stable as $$
declare
  u text;
begin
  -- An RPC's result is a JSON array of one session id (or null).
  for u in select m[1] from regexp_matches(r, '([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})', 'g') m loop
    r := replace(r, u, coalesce((select k.key from fred_diff.session_keys k where k.id = u::uuid), 'unknown session'));
  end loop;
  return r;
end
$$;

-- The report: one line per step result, session row and ledger row, ordered by history.
create function fred_diff.report() returns setof text
language sql stable as $$
  select line from (
    select r.h, 1 as part, lpad(r.n::text, 5) as sk,
           'h=' || r.h || ' step ' || r.n || ' ' || s.kind || ' -> ' || fred_diff.result_text(r.result) as line
      from fred_diff.results r join fred_diff.steps s using (h, n)
    union all
    select k.h, 2, k.key,
           'h=' || k.h || ' session ' || k.key || ' ' ||
           -- Each install makes its own transcript digest (Rust: of the binary form; SQL: of the
           -- text); compared is whether the row's digest is its transcript's.
           fred_diff.canon(to_jsonb(s) - array['id', 'created_at', 'updated_at', 'recording_verified_at', 'transcript_digest']
                           || jsonb_build_object('digest_ok', s.transcript_digest is not distinct from fred.transcript_digest(s.transcript_json)))::text
      from fred.coaching_sessions s join fred_diff.session_keys k using (id)
    union all
    select coalesce(substring(e.event_id from '_h([0-9]+)_'), '-1')::integer, 3, e.event_id,
           'h=' || coalesce(substring(e.event_id from '_h([0-9]+)_'), '-1') || ' ledger ' ||
           fred_diff.canon(to_jsonb(e) - 'applied_at')::text
      from fred.livekit_events e
  ) x
  order by h, part, sk
$$;

-- For the driver's reduction: replace the steps with a given history (a JSON array of
-- {"h", "n", "kind", "payload"}), and clear fred's tables.
create function fred_diff.load(steps jsonb) returns integer
language plpgsql volatile as $$
begin
  truncate fred.coaching_sessions, fred.livekit_events;
  delete from fred_diff.steps;
  delete from fred_diff.results;
  insert into fred_diff.steps (h, n, kind, payload)
  select (x ->> 'h')::integer, (x ->> 'n')::integer, x ->> 'kind', x -> 'payload'
    from jsonb_array_elements(steps) x;
  return (select count(*) from fred_diff.steps);
end
$$;

create function fred_diff.history_json(p_h integer) returns jsonb
language sql stable as $$
  select coalesce(jsonb_agg(jsonb_build_object('h', h, 'n', n, 'kind', kind, 'payload', payload) order by n), '[]')
    from fred_diff.steps where h = p_h
$$;
