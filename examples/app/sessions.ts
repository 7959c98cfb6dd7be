// Reading the signed-in user's calls with supabase-js (browser or server component).
//
// The client carries the user's session (anon key + their JWT). fred_list_sessions returns only
// the caller's rows (RLS and the function's own check), newest first; fred_get_session returns
// NULL for a row that does not exist or that the caller may not see.
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import type { Database, FredArgs, FredSession } from '../types/fred';

export function browserClient(url: string, anonKey: string): SupabaseClient<Database> {
  return createClient<Database>(url, anonKey);
}

/** One page of the user's sessions; pass the last row's created_at as `before` for the next. */
export async function listMySessions(
  supabase: SupabaseClient<Database>,
  before?: string,
  pageSize = 20,
): Promise<FredSession[]> {
  const { data, error } = await supabase.rpc('fred_list_sessions', {
    max_rows: pageSize,
    before,
  } satisfies FredArgs<'fred_list_sessions'>);
  if (error) throw new Error(`fred_list_sessions: ${error.code} ${error.message}`);
  return data ?? [];
}

export async function getSession(
  supabase: SupabaseClient<Database>,
  sessionId: string,
): Promise<FredSession | null> {
  const { data, error } = await supabase.rpc('fred_get_session', {
    session_id: sessionId,
  } satisfies FredArgs<'fred_get_session'>);
  if (error) throw new Error(`fred_get_session: ${error.code} ${error.message}`);
  // A row the caller may not see comes back as NULL (or, over some clients, as a row of NULLs).
  return data && data.id ? data : null;
}

/** A playable URL for the owner: Storage's policy lets only the session's owner sign it. */
export async function recordingUrl(
  supabase: SupabaseClient<Database>,
  session: FredSession,
  expiresInSeconds = 3600,
): Promise<string | null> {
  if (session.recording_status !== 'ready' && session.recording_status !== 'uploaded') return null;
  if (!session.recording_bucket || !session.recording_key) return null;
  const { data, error } = await supabase.storage
    .from(session.recording_bucket)
    .createSignedUrl(session.recording_key, expiresInSeconds);
  if (error) return null;
  return data.signedUrl;
}

/** A one-line summary for a list view. */
export function describe(session: FredSession): string {
  const when = session.started_at ?? session.created_at;
  const minutes = session.duration_seconds == null ? 'live' : `${Math.round(session.duration_seconds / 60)} min`;
  const recording = session.recording_status ?? 'no recording';
  return `${when.slice(0, 16).replace('T', ' ')} · ${session.call_type ?? 'call'} · ${minutes} · ${session.transcript_entries} turns · ${recording}`;
}
