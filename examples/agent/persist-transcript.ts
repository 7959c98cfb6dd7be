// The coach agent's last step: persist the call's outcome into fred (server side only).
//
// Runs in your LiveKit agent worker with the service_role key, which bypasses RLS: keep it out of
// any browser bundle. With the @livekit/agents framework (agents-js 1.x), call it when the job ends:
//
//   ctx.addShutdownCallback(async () => {
//     await persistCallOutcome(ctx.room.name!, ctx.room.metadata, {
//       transcript: toTranscript(session.history.items),
//       summary, decisions, nextActions,
//     });
//   });
//
// (That wiring is a sketch; the functions below are type-checked by .ci/examples.sh.)
//
// fred_persist_transcript writes the newest session of the room's name, and creates one if none
// exists. Created by service_role, such a row has no owner and the user never sees it. So the
// session must exist first: the token route creates it with fred_upsert_session as the user, and
// the room's metadata carries user_id for syncd. persistCallOutcome checks that before writing.
//
// Environment: SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY.
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import type { Database, FredArgs, FredSession, Json, TranscriptEntry } from '../types/fred';
import { env } from '../lib/env';

export interface CallOutcome {
  transcript: TranscriptEntry[];
  summary?: string;
  decisions?: string[];
  nextActions?: string[];
  callType?: string;
}

/** What the token route put into the room's metadata. */
interface RoomMetadata {
  user_id?: string;
  session_id?: string;
}

let client: SupabaseClient<Database> | undefined;
export function serviceClient(): SupabaseClient<Database> {
  client ??= createClient<Database>(env('SUPABASE_URL'), env('SUPABASE_SERVICE_ROLE_KEY'), {
    auth: { persistSession: false, autoRefreshToken: false },
  });
  return client;
}

/** Chat items as agent frameworks keep them (role + text), as fred's transcript entries. */
export function toTranscript(
  items: ReadonlyArray<{ type?: string; role?: string; textContent?: string; content?: unknown }>,
): TranscriptEntry[] {
  const entries: TranscriptEntry[] = [];
  for (const item of items) {
    if (item.type !== undefined && item.type !== 'message') continue; // tool calls and the like
    if (item.role !== 'user' && item.role !== 'assistant') continue; // system prompts stay out
    const text =
      item.textContent ??
      (Array.isArray(item.content) ? item.content.filter((c) => typeof c === 'string').join('\n') : '');
    if (!text) continue;
    entries.push({ speaker: item.role === 'assistant' ? 'coach' : 'user', text });
  }
  return entries;
}

/** Persists the outcome; retries transport failures (a repeat is harmless: it replaces). */
export async function persistCallOutcome(
  roomName: string,
  roomMetadata: string | undefined,
  outcome: CallOutcome,
  supabase: SupabaseClient<Database> = serviceClient(),
): Promise<string> {
  await warnIfOwnerless(supabase, roomName, roomMetadata);
  const args: FredArgs<'fred_persist_transcript'> = {
    room_name: roomName,
    // fred's cap is 500 entries (22001 beyond it): keep the most recent ones.
    transcript: outcome.transcript.slice(-500),
    summary: outcome.summary,
    decisions: outcome.decisions as Json[] | undefined,
    next_actions: outcome.nextActions as Json[] | undefined,
    call_type: outcome.callType,
  };
  for (let attempt = 1; ; attempt++) {
    const { data, error } = await supabase.rpc('fred_persist_transcript', args);
    if (!error && data) return data;
    // 22001: over a cap; 22023: a bad shape (the message names the entry); 42501: not allowed.
    // Those will not change on retry. Anything else (network, 5xx) is retried.
    const permanent = error?.code === '22001' || error?.code === '22023' || error?.code === '42501';
    if (permanent || attempt >= 5) {
      throw new Error(`fred_persist_transcript(${roomName}): ${error?.code ?? ''} ${error?.message ?? 'no id'}`);
    }
    await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
  }
}

/** The session the app created should exist and have an owner; say so loudly if not. */
async function warnIfOwnerless(
  supabase: SupabaseClient<Database>,
  roomName: string,
  roomMetadata: string | undefined,
): Promise<void> {
  let meta: RoomMetadata = {};
  try {
    meta = roomMetadata ? (JSON.parse(roomMetadata) as RoomMetadata) : {};
  } catch {
    /* not JSON: no owner known */
  }
  if (!meta.session_id) {
    if (!meta.user_id) {
      console.warn(`fred: room ${roomName} names no user_id; its session may have no owner`);
    }
    return;
  }
  const { data, error } = await supabase.rpc('fred_get_session', {
    session_id: meta.session_id,
  } satisfies FredArgs<'fred_get_session'>);
  const session = data as FredSession | null;
  if (error || !session?.id) {
    console.warn(`fred: session ${meta.session_id} of room ${roomName} not found; persisting creates an ownerless row`);
  } else if (!session.user_id) {
    console.warn(`fred: session ${session.id} of room ${roomName} has no owner`);
  }
}
