// app/api/livekit/token/route.ts — Next.js (App Router) route handler.
//
// The signed-in user asks for a coaching call. This handler, acting as that user:
//   1. creates fred's session row with fred_upsert_session (the user owns it, through their JWT);
//   2. creates the LiveKit room with `user_id` in the room's metadata (so syncd binds every
//      event of the room to that user, even if step 1 were skipped) and dispatches the agent;
//   3. mints the participant's AccessToken.
// Order matters: the session exists, with its owner, before anything else can write it. An agent
// persisting with the service_role key into a room that has no session yet creates an ownerless
// row that the user never sees.
//
// Environment (server only): NEXT_PUBLIC_SUPABASE_URL, NEXT_PUBLIC_SUPABASE_ANON_KEY,
// LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET. No service_role key here.
import { randomUUID } from 'node:crypto';
import { createClient } from '@supabase/supabase-js';
import { AccessToken, RoomAgentDispatch, RoomServiceClient } from 'livekit-server-sdk';
import type { Database, FredArgs } from '../../../../types/fred';
import { env, livekitHttpUrl } from '../../../../lib/env';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/** What the browser gets back: enough to join with livekit-client's `room.connect(serverUrl, token)`. */
export interface CallDetails {
  serverUrl: string;
  roomName: string;
  sessionId: string;
  participantToken: string;
}

/** The room's metadata: fred reads `user_id`; the agent reads `session_id`. */
export interface RoomMetadata {
  user_id: string;
  session_id: string;
}

export async function POST(request: Request): Promise<Response> {
  // The user's Supabase access token (supabase.auth.getSession() in the browser, sent as a Bearer).
  const jwt = request.headers.get('authorization')?.match(/^Bearer\s+(.+)$/i)?.[1];
  if (!jwt) return Response.json({ error: 'sign in first' }, { status: 401 });

  // A client that acts as the user: RLS and fred's ownership rules apply to every call.
  const supabase = createClient<Database>(
    env('NEXT_PUBLIC_SUPABASE_URL'),
    env('NEXT_PUBLIC_SUPABASE_ANON_KEY'),
    {
      global: { headers: { Authorization: `Bearer ${jwt}` } },
      auth: { persistSession: false, autoRefreshToken: false },
    },
  );
  const { data: auth, error: authError } = await supabase.auth.getUser(jwt);
  if (authError || !auth.user) return Response.json({ error: 'sign in first' }, { status: 401 });
  const userId = auth.user.id;

  const body = (await request.json().catch(() => ({}))) as { callType?: unknown };
  const callType = typeof body.callType === 'string' ? body.callType.slice(0, 64) : 'coaching';

  // Unguessable room names: a room whose metadata names no user could otherwise be bound to a
  // session someone pre-created under a guessed name.
  const roomName = `coaching-${randomUUID()}`;

  // 1. The session, owned by the caller. 42501 means the JWT named no user, or another user's row.
  const { data: sessionId, error } = await supabase.rpc('fred_upsert_session', {
    room_name: roomName,
    user_id: userId,
    call_type: callType,
    metadata: { source: 'web' },
  } satisfies FredArgs<'fred_upsert_session'>);
  if (error || !sessionId) {
    const status = error?.code === '42501' ? 403 : 400;
    return Response.json({ error: error?.message ?? 'no session', code: error?.code }, { status });
  }

  // 2. The room, with the owner in its metadata (fred: "the metadata's user_id wins").
  const livekitUrl = env('LIVEKIT_URL');
  const apiKey = env('LIVEKIT_API_KEY');
  const apiSecret = env('LIVEKIT_API_SECRET');
  const rooms = new RoomServiceClient(livekitHttpUrl(livekitUrl), apiKey, apiSecret);
  const metadata: RoomMetadata = { user_id: userId, session_id: sessionId };
  await rooms.createRoom({
    name: roomName,
    emptyTimeout: 5 * 60,
    departureTimeout: 20,
    maxParticipants: 2,
    metadata: JSON.stringify(metadata),
    // The coach joins as soon as the user does (agent name as registered by your worker).
    agents: [new RoomAgentDispatch({ agentName: 'coach' })],
  });

  // 3. The user's token for this room only.
  const token = new AccessToken(apiKey, apiSecret, { identity: userId, ttl: '15m' });
  token.addGrant({
    room: roomName,
    roomJoin: true,
    canPublish: true,
    canSubscribe: true,
    canPublishData: true,
  });

  const details: CallDetails = {
    serverUrl: livekitUrl,
    roomName,
    sessionId,
    participantToken: await token.toJwt(),
  };
  return Response.json(details, { headers: { 'cache-control': 'no-store' } });
}
