-- The Rust side of fred 0.1.0 -> 0.2.0: the functions the compiled engine adds or replaces, as
-- pgrx generates them in fred--0.2.0.sql (the shared files that follow use them).

-- fred.check_transcript: was a SQL wrapper over check_transcript_text(transcript::text); now
-- Rust reads the jsonb's binary form. check_transcript_text stays, unchanged.
CREATE OR REPLACE FUNCTION "check_transcript"(
	"transcript" jsonb /* Option < jsonb :: RawJsonb > */
) RETURNS INT /* i32 */
STABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'check_transcript_wrapper';

CREATE  FUNCTION "transcript_digest"(
	"transcript" jsonb /* jsonb :: RawJsonb */
) RETURNS bytea /* Vec < u8 > */
IMMUTABLE STRICT PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'transcript_digest_wrapper';

-- fred.apply_event_batch: fred.apply_livekit_events's fast path, a batch in a few statements.
CREATE  FUNCTION "apply_event_batch"(
	"events" jsonb /* Option < pgrx :: JsonB > */
) RETURNS TEXT[] /* Vec < String > */
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'apply_event_batch_wrapper';
