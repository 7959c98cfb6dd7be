//! Close sessions that went silent: no event for SYNCD_STALE_AFTER.

use super::{Context, JobError, interval};
use tokio_postgres::types::Type;

pub async fn run(ctx: &Context) -> Result<usize, JobError> {
    let quiet = interval(ctx.jobs.stale_after);
    let closed: Option<i32> = ctx
        .db
        .scalar(
            "select fred.close_stale_sessions($1::text::interval)",
            &[(&quiet, Type::TEXT)],
        )
        .await?;
    Ok(closed.unwrap_or(0) as usize)
}
