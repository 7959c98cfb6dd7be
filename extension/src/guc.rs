//! The transcript caps. SUSET: only a superuser (or a role granted SET on the parameter) can
//! move them, because an abuse cap the caller can raise is no cap.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

pub const DEFAULT_MAX_ENTRIES: i32 = 500;
pub const DEFAULT_MAX_BYTES: i32 = 1_048_576;

pub static MAX_TRANSCRIPT_ENTRIES: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_MAX_ENTRIES);
pub static MAX_TRANSCRIPT_BYTES: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_MAX_BYTES);

pub fn init() {
    GucRegistry::define_int_guc(
        c"fred.max_transcript_entries",
        c"Most entries a session transcript may hold.",
        c"A longer transcript is rejected with SQLSTATE 22001.",
        &MAX_TRANSCRIPT_ENTRIES,
        1,
        100_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"fred.max_transcript_bytes",
        c"Largest transcript, in bytes of its jsonb text form.",
        c"A larger transcript is rejected with SQLSTATE 22001.",
        &MAX_TRANSCRIPT_BYTES,
        1024,
        1_073_741_823,
        GucContext::Suset,
        GucFlags::default(),
    );
}
