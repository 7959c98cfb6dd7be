// TypeScript types for fred's public API (the four `public.fred_*` RPCs and the row they return).
//
// `FredSession` is one row of `fred.coaching_sessions`, as PostgREST returns it over JSON:
// uuid, text and timestamptz are strings; integer and bigint are numbers; jsonb is JSON.
// .ci/examples.sh checks every field against the table's columns in a live database (name, type,
// nullability and the allowed values of `status` and `recording_status`), and the RPCs' argument
// names against the functions. Keep one field per line: the check reads this file.

export type Json =
  | string
  | number
  | boolean
  | null
  | { [key: string]: Json | undefined }
  | Json[];

/** One transcript entry: a string `text` and a string `speaker` (or `role`); other keys are kept. */
export interface TranscriptEntry {
  text: string;
  speaker?: string;
  role?: string;
  [key: string]: Json | undefined;
}

export type SessionStatus = 'active' | 'ended';

export type RecordingStatus =
  | 'disabled'
  | 'starting'
  | 'recording'
  | 'uploaded'
  | 'ready'
  | 'unavailable'
  | 'failed'
  | 'missing'
  | 'lost'
  | 'deleted';

/** A row of fred.coaching_sessions (what fred_get_session and fred_list_sessions return). */
export interface FredSession {
  id: string;
  room_name: string;
  room_sid: string | null;
  user_id: string | null;
  status: SessionStatus;
  started_at: string | null;
  ended_at: string | null;
  duration_seconds: number | null;
  end_reason: string | null;
  last_event_at: string | null;
  metadata: { [key: string]: Json | undefined } | null;
  call_type: string | null;
  transcript_json: TranscriptEntry[] | null;
  transcript_entries: number;
  summary: string | null;
  decisions: Json[] | null;
  next_actions: Json[] | null;
  recording_url: string | null;
  recording_status: RecordingStatus | null;
  recording_bucket: string | null;
  recording_key: string | null;
  recording_bytes: number | null;
  recording_duration_ms: number | null;
  recording_error: string | null;
  recording_verified_at: string | null;
  egress_id: string | null;
  egress_status: string | null;
  egress_updated_ns: number | null;
  created_at: string;
  updated_at: string;
  /** SHA-256 of the transcript (hex, as PostgREST writes bytea); the database keeps it. */
  transcript_digest: string | null;
}

/**
 * The `Database` type for `createClient<Database>()`, in the shape `supabase gen types typescript`
 * writes, limited to fred's functions (merge it into your generated types). Arguments with a SQL
 * default are optional.
 */
export type Database = {
  public: {
    Tables: { [_ in never]: never };
    Views: { [_ in never]: never };
    Functions: {
      fred_upsert_session: {
        Args: {
          room_name: string;
          user_id?: string;
          call_type?: string;
          metadata?: { [key: string]: Json | undefined };
        };
        Returns: string;
      };
      fred_persist_transcript: {
        Args: {
          room_name: string;
          transcript: TranscriptEntry[];
          summary?: string;
          decisions?: Json[];
          next_actions?: Json[];
          call_type?: string;
          /** The owner, for a server-side caller (service_role) persisting before any session exists. */
          user_id?: string;
        };
        Returns: string;
      };
      fred_delete_session: {
        Args: { session_id: string };
        /** true when a session was erased; false for a missing one or someone else's. */
        Returns: boolean;
      };
      fred_get_session: {
        Args: { session_id: string };
        Returns: FredSession | null;
      };
      fred_list_sessions: {
        Args: { max_rows?: number; before?: string };
        Returns: FredSession[];
      };
    };
    Enums: { [_ in never]: never };
    CompositeTypes: { [_ in never]: never };
  };
};

type FredFunctions = Database['public']['Functions'];
/**
 * The arguments of one of fred's RPCs. supabase-js infers `rpc()`'s arguments generically, so a
 * misspelled optional argument slips through; `{ ... } satisfies FredArgs<'fred_list_sessions'>`
 * catches it.
 */
export type FredArgs<F extends keyof FredFunctions> = FredFunctions[F]['Args'];
