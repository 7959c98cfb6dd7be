//! Close sessions that went silent: no event for SYNCD_STALE_AFTER.

use super::{Context, JobError, interval};
use tokio_postgres::types::Type;

pub async fn run(ctx: &Context) -> Result<usize, JobError> {
    let c = ctx.db.client().await?;
    let quiet = interval(ctx.jobs.stale_after);
    let rows = c
        .query_typed(
            "select fred.close_stale_sessions($1::text::interval)",
            &[(&quiet, Type::TEXT)],
        )
        .await?;
    Ok(rows.first().map(|r| r.get::<_, i32>(0)).unwrap_or(0) as usize)
}
