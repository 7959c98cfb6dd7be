//! Retention: delete recordings (S3 first, then the row) and transcripts older than their
//! configured age. Idempotent and resumable: a row keeps its key until its object is gone.
//!
//! Whenever S3 is configured the recordings pass runs, with or without
//! `RECORDING_RETENTION_DAYS`: `fred.recordings_to_delete` lists erased sessions' objects first
//! whatever the age, so an erasure (issue 14) is finished by `fred.mark_recording_deleted` even
//! when recordings are otherwise kept for ever (an age of 36,500 days then lists nothing else).

use super::{Context, JobError};
use tokio_postgres::types::Type;

pub async fn run(ctx: &Context) -> Result<usize, JobError> {
    let mut changed = 0;
    // Recordings kept for ever still have their erasures to finish.
    const FOREVER_DAYS: u32 = 36_500;
    let recordings = match (&ctx.s3, ctx.jobs.recording_retention_days) {
        (Some(s3), days) => Some((s3, days.unwrap_or(FOREVER_DAYS))),
        (None, Some(_)) => {
            return Err(JobError::NotConfigured(
                "RECORDING_RETENTION_DAYS needs the RECORDING_S3_* settings",
            ));
        }
        (None, None) => None,
    };
    if let Some((s3, days)) = recordings {
        let days = days as i32;
        // One statement per pooled connection: none is held across the S3 calls.
        loop {
            let rows = ctx
                .db
                .query(
                    "select session_id::text, bucket, key from fred.recordings_to_delete($1, 200)",
                    &[(&days, Type::INT4)],
                )
                .await?;
            let mut progressed = false;
            for r in &rows {
                let (id, bucket, key): (String, Option<String>, String) =
                    (r.get(0), r.get(1), r.get(2));
                let bucket = bucket.unwrap_or_else(|| s3.bucket.clone());
                if let Err(e) = s3.delete(&bucket, &key).await {
                    tracing::warn!(error = %e, bucket = %bucket, key = %key, "DeleteObject failed; will retry next run");
                    continue;
                }
                let marked: bool = ctx
                    .db
                    .scalar(
                        "select fred.mark_recording_deleted($1::text::uuid)",
                        &[(&id, Type::TEXT)],
                    )
                    .await?
                    .unwrap_or(false);
                if marked {
                    changed += 1;
                    progressed = true;
                }
            }
            if rows.len() < 200 || !progressed {
                break;
            }
        }
    }
    if let Some(days) = ctx.jobs.transcript_retention_days {
        let days = days as i32;
        let purged: Option<i32> = ctx
            .db
            .scalar("select fred.purge_transcripts($1)", &[(&days, Type::INT4)])
            .await?;
        changed += purged.unwrap_or(0) as usize;
    }
    Ok(changed)
}
