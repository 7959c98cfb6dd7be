-- fred engine, pure SQL: the PL/pgSQL twin of the extension's Rust engine.
--
-- For hosted Supabase, which cannot load compiled extensions. Apply before
-- 20261124000002_fred_core.sql. The shared pgTAP suite (sql/tests) runs against both
-- installs, so any difference in behaviour from the Rust engine is a failing test.
--
-- Difference from the extension: here `fred.max_transcript_entries` and
-- `fred.max_transcript_bytes` are placeholder settings any direct SQL session may SET.
-- RPC callers cannot issue SET, so the caps hold for them; values are clamped to the
-- extension's ranges.

create schema if not exists fred;

-- A fred.* integer setting: unset or empty gives the default; the value is clamped.
create function fred.setting_int(p_name text, p_default integer, p_min integer, p_max integer)
returns integer
language plpgsql stable
set search_path = ''
as $$
declare
  v text := pg_catalog.btrim(coalesce(pg_catalog.current_setting(p_name, true), ''));
begin
  if v !~ '^[+-]?[0-9]{1,30}$' then
    return p_default;
  end if;
  return greatest(p_min::numeric, least(p_max::numeric, v::numeric))::integer;
end
$$;

create function fred.check_transcript(transcript jsonb) returns integer
language plpgsql stable
set search_path = ''
as $$
declare
  v_max_entries integer := fred.setting_int('fred.max_transcript_entries', 500, 1, 100000);
  v_max_bytes   integer := fred.setting_int('fred.max_transcript_bytes', 1048576, 1024, 1073741823);
  v_entries     integer;
  v_bytes       integer;
  v_bad         bigint;
begin
  if transcript is null then
    raise exception 'fred: transcript must not be null' using errcode = '22023';
  end if;
  if jsonb_typeof(transcript) <> 'array' then
    raise exception 'fred: transcript must be a JSON array' using errcode = '22023';
  end if;
  v_entries := jsonb_array_length(transcript);
  if v_entries > v_max_entries then
    raise exception 'fred: transcript has % entries; the cap is % (fred.max_transcript_entries)', v_entries, v_max_entries
      using errcode = '22001';
  end if;
  v_bytes := octet_length(transcript::text);
  if v_bytes > v_max_bytes then
    raise exception 'fred: transcript is % bytes; the cap is % (fred.max_transcript_bytes)', v_bytes, v_max_bytes
      using errcode = '22001';
  end if;
  select min(e.i) - 1 into v_bad
    from jsonb_array_elements(transcript) with ordinality e(v, i)
   where not coalesce(jsonb_typeof(e.v) = 'object'
                      and jsonb_typeof(e.v -> 'text') = 'string'
                      and (jsonb_typeof(e.v -> 'speaker') = 'string' or jsonb_typeof(e.v -> 'role') = 'string'), false);
  if v_bad is not null then
    raise exception 'fred: transcript entry % must be an object with a string "text" and a string "speaker" or "role"', v_bad
      using errcode = '22023';
  end if;
  return v_entries;
end
$$;

-- Field access in both key styles; JSON null counts as absent.
create function fred.ev_field(o jsonb, camel text, snake text) returns jsonb
language sql immutable
set search_path = ''
as $$
  select coalesce(nullif(o -> camel, 'null'::jsonb), nullif(o -> snake, 'null'::jsonb))
$$;

create function fred.ev_object(o jsonb, camel text, snake text) returns jsonb
language plpgsql immutable
set search_path = ''
as $$
declare
  v jsonb := fred.ev_field(o, camel, snake);
begin
  if v is not null and jsonb_typeof(v) <> 'object' then
    raise exception 'fred: % must be an object', camel using errcode = '22023';
  end if;
  return v;
end
$$;

-- A string; '' is proto3's default and counts as absent.
create function fred.ev_string(o jsonb, camel text, snake text) returns text
language plpgsql immutable
set search_path = ''
as $$
declare
  v jsonb := fred.ev_field(o, camel, snake);
begin
  if v is null then
    return null;
  end if;
  if jsonb_typeof(v) <> 'string' then
    raise exception 'fred: % must be a string', camel using errcode = '22023';
  end if;
  return nullif(v #>> '{}', '');
end
$$;

-- An int64: a JSON integer or a string holding one.
create function fred.ev_int64(o jsonb, camel text, snake text) returns bigint
language plpgsql immutable
set search_path = ''
as $$
declare
  v jsonb := fred.ev_field(o, camel, snake);
  t text;
begin
  if v is null then
    return null;
  end if;
  if jsonb_typeof(v) not in ('number', 'string') then
    raise exception 'fred: % must be an integer', camel using errcode = '22023';
  end if;
  t := v #>> '{}';
  if t !~ '^[+-]?0*[0-9]{1,19}$' then
    raise exception 'fred: % must be an integer', camel using errcode = '22023';
  end if;
  begin
    return t::bigint;
  exception when numeric_value_out_of_range then
    raise exception 'fred: % must be an integer', camel using errcode = '22023';
  end;
end
$$;

create function fred.ev_seconds_us(camel text, s bigint) returns bigint
language plpgsql immutable
set search_path = ''
as $$
begin
  if s is null then
    return null;
  end if;
  if s < -62135596800 or s > 253402300799 then
    raise exception 'fred: % is out of range', camel using errcode = '22023';
  end if;
  return s * 1000000;
end
$$;

create function fred.ev_egress_status(v jsonb) returns text
language plpgsql immutable
set search_path = ''
as $$
declare
  names text[] := array['EGRESS_STARTING', 'EGRESS_ACTIVE', 'EGRESS_ENDING', 'EGRESS_COMPLETE',
                        'EGRESS_FAILED', 'EGRESS_ABORTED', 'EGRESS_LIMIT_REACHED'];
  t text;
begin
  if v is null then
    return 'EGRESS_STARTING';
  end if;
  t := v #>> '{}';
  if jsonb_typeof(v) = 'number' then
    if t in ('0', '1', '2', '3', '4', '5', '6') then
      return names[t::integer + 1];
    end if;
    raise exception 'fred: unknown egress status %', t using errcode = '22023';
  elsif jsonb_typeof(v) = 'string' then
    if t = any(names) then
      return t;
    end if;
    raise exception 'fred: unknown egress status "%"', t using errcode = '22023';
  end if;
  raise exception 'fred: egressInfo.status must be a string or a number' using errcode = '22023';
end
$$;

-- STARTING < ACTIVE < ENDING < final; the four final states share one rank.
create function fred.ev_egress_rank(status text) returns integer
language sql immutable
set search_path = ''
as $$
  select case status when 'EGRESS_STARTING' then 0 when 'EGRESS_ACTIVE' then 1 when 'EGRESS_ENDING' then 2 else 3 end
$$;

create function fred.apply_livekit_event(event jsonb) returns text
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_type       text;
  v_id         text;
  v_kind       text;
  v_created    bigint;
  v_room       jsonb;
  v_part       jsonb;
  v_info       jsonb;
  v_room_sid   text;
  v_room_name  text;
  v_room_us    bigint;
  v_ms         bigint;
  v_meta       text;
  v_user       text;
  v_ignored    boolean;
  -- egress
  v_status     text;
  v_updated    bigint;
  v_first      jsonb;
  v_req        jsonb;
  v_s3         jsonb;
  v_outs       jsonb;
  v_filename   text;
  v_location   text;
  v_size       bigint;
  v_duration   bigint;
  v_endpoint   text;
  v_bucket     text;
  v_egress_id  text;
  v_error      text;
  -- merge
  v_session    uuid;
  v_sess_name  text;
  v_cur_egress text;
  v_cur_status text;
  v_cur_upd    bigint;
  v_cur_rec    text;
  v_recording  text;
  v_url        text;
  v_key        text;
  v_final      boolean;
  v_file       boolean;
  v_keep       boolean;
  r            text;
begin
  if event is null or jsonb_typeof(event) <> 'object' then
    raise exception 'fred: a LiveKit event must be a JSON object' using errcode = '22023';
  end if;
  if jsonb_typeof(event -> 'event') is distinct from 'string' or event ->> 'event' = '' then
    raise exception 'fred: a LiveKit event needs a string "event"' using errcode = '22023';
  end if;
  if jsonb_typeof(event -> 'id') is distinct from 'string' or event ->> 'id' = '' then
    raise exception 'fred: a LiveKit event needs a string "id"' using errcode = '22023';
  end if;
  v_type := event ->> 'event';
  v_id := event ->> 'id';
  v_kind := case when v_type in ('room_started', 'room_finished', 'participant_joined', 'participant_left',
                                 'egress_started', 'egress_updated', 'egress_ended') then v_type else 'other' end;
  v_created := fred.ev_seconds_us('createdAt', fred.ev_int64(event, 'createdAt', 'created_at'));

  v_room := fred.ev_object(event, 'room', 'room');
  if v_room is not null then
    v_ms := fred.ev_int64(v_room, 'creationTimeMs', 'creation_time_ms');
    if v_ms is not null then
      v_room_us := fred.ev_seconds_us('creationTimeMs', floor(v_ms::numeric / 1000)::bigint)
                   + (v_ms - floor(v_ms::numeric / 1000)::bigint * 1000) * 1000;
    else
      v_room_us := fred.ev_seconds_us('creationTime', fred.ev_int64(v_room, 'creationTime', 'creation_time'));
    end if;
    v_meta := fred.ev_string(v_room, 'metadata', 'metadata');
    if v_meta is not null then
      begin
        v_user := v_meta::jsonb -> 'user_id' #>> '{}';
        if jsonb_typeof(v_meta::jsonb -> 'user_id') is distinct from 'string'
           or v_user !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then
          v_user := null;
        end if;
      exception when others then
        v_user := null;
      end;
      v_user := lower(v_user);
    end if;
    v_room_sid := fred.ev_string(v_room, 'sid', 'sid');
    v_room_name := fred.ev_string(v_room, 'name', 'name');
  end if;

  v_part := fred.ev_object(event, 'participant', 'participant');
  -- coalesce: a participant without `kind` (the usual case) must give false, not NULL.
  v_ignored := v_kind = 'other'
    or coalesce(fred.ev_field(v_part, 'kind', 'kind') in ('"EGRESS"'::jsonb, '3'::jsonb), false);

  if v_kind in ('egress_started', 'egress_updated', 'egress_ended') then
    v_info := fred.ev_object(event, 'egressInfo', 'egress_info');
    if v_info is null then
      raise exception 'fred: % needs an object "egressInfo"', v_type using errcode = '22023';
    end if;
    v_status := fred.ev_egress_status(fred.ev_field(v_info, 'status', 'status'));
    v_first := fred.ev_field(v_info, 'fileResults', 'file_results');
    if v_first is not null then
      if jsonb_typeof(v_first) <> 'array' then
        raise exception 'fred: fileResults must be an array' using errcode = '22023';
      end if;
      v_first := v_first -> 0;
      if v_first is not null and jsonb_typeof(v_first) <> 'object' then
        raise exception 'fred: fileResults entries must be objects' using errcode = '22023';
      end if;
    end if;
    if v_first is null then
      v_first := fred.ev_object(v_info, 'file', 'file');
    end if;
    if v_first is not null then
      v_filename := fred.ev_string(v_first, 'filename', 'filename');
      v_location := fred.ev_string(v_first, 'location', 'location');
      v_size := fred.ev_int64(v_first, 'size', 'size');
      v_duration := fred.ev_int64(v_first, 'duration', 'duration');
    end if;
    -- The echoed S3 upload, from any request type's first file output.
    foreach r in array array['roomComposite:room_composite', 'web:web', 'participant:participant',
                             'trackComposite:track_composite', 'track:track'] loop
      v_req := fred.ev_object(v_info, split_part(r, ':', 1), split_part(r, ':', 2));
      continue when v_req is null;
      v_outs := fred.ev_field(v_req, 'fileOutputs', 'file_outputs');
      if jsonb_typeof(v_outs) = 'array' and jsonb_typeof(v_outs -> 0) = 'object' then
        v_s3 := fred.ev_object(v_outs -> 0, 's3', 's3');
        exit when v_s3 is not null;
      end if;
      if fred.ev_object(v_req, 'file', 'file') is not null then
        v_s3 := fred.ev_object(fred.ev_object(v_req, 'file', 'file'), 's3', 's3');
        exit when v_s3 is not null;
      end if;
    end loop;
    if v_s3 is not null then
      v_endpoint := fred.ev_string(v_s3, 'endpoint', 'endpoint');
      v_bucket := fred.ev_string(v_s3, 'bucket', 'bucket');
    end if;
    -- Read even where unused, as the Rust engine does.
    perform fred.ev_string(v_info, 'details', 'details');
    v_egress_id := fred.ev_string(v_info, 'egressId', 'egress_id');
    v_updated := coalesce(fred.ev_int64(v_info, 'updatedAt', 'updated_at'), 0);
    v_final := fred.ev_egress_rank(v_status) = 3;
    v_file := v_status in ('EGRESS_COMPLETE', 'EGRESS_LIMIT_REACHED');
    v_error := coalesce(fred.ev_string(v_info, 'error', 'error'),
                        case when v_final and not v_file then fred.ev_string(v_info, 'details', 'details') end,
                        case when v_file and fred.ev_field(v_info, 'backupStorageUsed', 'backup_storage_used') = 'true'::jsonb
                             then 'egress used backup storage; the file is not in the configured bucket' end);
    v_room_sid := coalesce(v_room_sid, fred.ev_string(v_info, 'roomId', 'room_id'));
    v_room_name := coalesce(v_room_name, fred.ev_string(v_info, 'roomName', 'room_name'));
    v_size := case when v_size > 0 then v_size end;
    v_duration := case when v_duration > 0 then v_duration end;
  end if;

  if not v_ignored and v_room_sid is null and v_room_name is null then
    raise exception 'fred: % names no room', v_type using errcode = '22023';
  end if;
  if length(v_room_name) > 256 or length(v_room_sid) > 256 then
    raise exception 'fred: room names and sids are at most 256 characters' using errcode = '22023';
  end if;
  -- Validated even where unused, so a malformed body is rejected whatever its type.
  v_info := fred.ev_object(event, 'egressInfo', 'egress_info');
  if v_info is not null and fred.ev_field(v_info, 'backupStorageUsed', 'backup_storage_used') is not null
     and jsonb_typeof(fred.ev_field(v_info, 'backupStorageUsed', 'backup_storage_used')) <> 'boolean' then
    raise exception 'fred: backupStorageUsed must be a boolean' using errcode = '22023';
  end if;

  -- Ledger: each event id is applied once.
  insert into fred.livekit_events (event_id, event_type, room_sid, room_name, created_at, outcome)
  values (v_id, v_type, v_room_sid, v_room_name,
          timestamptz 'epoch' + v_created * interval '1 microsecond',
          case when v_ignored then 'ignored' else 'applied' end)
  on conflict (event_id) do nothing
  returning event_id into r;
  if r is null then
    return 'duplicate';
  end if;
  if v_ignored then
    return 'ignored';
  end if;

  v_session := fred.session_for(v_room_sid, v_room_name, v_user::uuid);

  update fred.coaching_sessions s set
    started_at    = least(s.started_at, timestamptz 'epoch' + v_room_us * interval '1 microsecond',
                          timestamptz 'epoch' + v_created * interval '1 microsecond'),
    last_event_at = greatest(s.last_event_at, coalesce(timestamptz 'epoch' + v_created * interval '1 microsecond', now())),
    user_id       = coalesce(v_user::uuid, s.user_id),
    status        = case when v_kind = 'room_finished' then 'ended' else s.status end,
    ended_at      = case when v_kind <> 'room_finished' then s.ended_at
                         when s.end_reason is not null then coalesce(timestamptz 'epoch' + v_created * interval '1 microsecond', now())
                         else greatest(s.ended_at, coalesce(timestamptz 'epoch' + v_created * interval '1 microsecond', now())) end,
    end_reason    = case when v_kind = 'room_finished' then null else s.end_reason end,
    updated_at    = now()
  where s.id = v_session
  returning s.room_name, s.egress_id, s.egress_status, s.egress_updated_ns, s.recording_status
    into v_sess_name, v_cur_egress, v_cur_status, v_cur_upd, v_cur_rec;

  if v_status is null then
    return 'applied';
  end if;
  -- A session follows one egress: the first it learns of.
  if v_cur_egress is not null and v_egress_id is not null and v_cur_egress <> v_egress_id then
    return 'applied';
  end if;
  if v_cur_status is not null
     and not (fred.ev_egress_rank(v_status) > fred.ev_egress_rank(v_cur_status)
              or (fred.ev_egress_rank(v_status) = fred.ev_egress_rank(v_cur_status) and v_updated > coalesce(v_cur_upd, 0))) then
    return 'applied';
  end if;

  v_recording := case when v_status = 'EGRESS_STARTING' then 'starting'
                      when v_status in ('EGRESS_ACTIVE', 'EGRESS_ENDING') then 'recording'
                      when v_file then 'uploaded'
                      else 'failed' end;
  if v_cur_rec in ('ready', 'missing') and v_recording = 'uploaded' then
    v_recording := v_cur_rec;
  elsif v_cur_rec = 'deleted' then
    v_recording := 'deleted';
  end if;
  if v_file then
    v_key := coalesce(v_filename, v_sess_name);
    v_url := coalesce(v_location,
                      case when v_endpoint is not null and v_bucket is not null and v_key is not null
                           then rtrim(v_endpoint, '/') || '/' || v_bucket || '/' || v_key end);
  elsif v_final then
    v_key := coalesce(v_filename, v_sess_name);
  else
    v_key := v_filename;
  end if;
  v_keep := v_recording = 'deleted';

  update fred.coaching_sessions s set
    egress_id             = coalesce(s.egress_id, v_egress_id),
    egress_status         = v_status,
    egress_updated_ns     = v_updated,
    recording_status      = v_recording,
    recording_url         = case when v_keep then s.recording_url else v_url end,
    recording_bucket      = case when v_keep then s.recording_bucket else v_bucket end,
    recording_key         = case when v_keep then s.recording_key else v_key end,
    recording_bytes       = case when v_keep then s.recording_bytes else case when v_file then v_size end end,
    recording_duration_ms = case when v_keep then s.recording_duration_ms else case when v_file then v_duration / 1000000 end end,
    recording_error       = case when v_final then v_error end,
    updated_at            = now()
  where s.id = v_session;
  return 'applied';
end
$$;
