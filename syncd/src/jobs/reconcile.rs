//! Reconcile recordings with LiveKit: heal missed webhooks and stuck egresses.
//!
//! What ListEgress says is applied through the webhook path (`fred.apply_livekit_events`), so
//! the merge rules stay in one place. An egress LiveKit no longer knows is `lost`; extra active
//! egresses for one room instance are stopped; finished uploads get their HeadObject check.

use super::{Context, JobError, interval};
use crate::egress::Egress;
use serde_json::{Value, json};
use tokio_postgres::types::Type;

fn int64(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn status_rank(v: &Value) -> u8 {
    match v {
        Value::Number(n) => n.as_u64().unwrap_or(0).min(3) as u8,
        Value::String(s) => match s.as_str() {
            "EGRESS_STARTING" | "" => 0,
            "EGRESS_ACTIVE" => 1,
            "EGRESS_ENDING" => 2,
            _ => 3,
        },
        _ => 0,
    }
}

/// The webhook LiveKit would have sent for this state of the egress.
pub fn event_for(item: &Value, room_sid: Option<&str>, room_name: &str) -> Value {
    let id = item["egress_id"]
        .as_str()
        .or(item["egressId"].as_str())
        .unwrap_or("");
    let status = &item["status"];
    let updated = int64(
        item.get("updated_at")
            .or(item.get("updatedAt"))
            .unwrap_or(&Value::Null),
    );
    let kind = match status_rank(status) {
        3 => "egress_ended",
        0 => "egress_started",
        _ => "egress_updated",
    };
    let sid = item["room_id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or(room_sid);
    let mut ev = json!({
        "event": kind,
        "id": format!("RC_{id}_{}_{updated}", status.as_str().map(str::to_owned).unwrap_or_else(|| status.to_string())),
        "room": {"sid": sid, "name": room_name},
        "egressInfo": item,
    });
    if updated > 0 {
        ev["createdAt"] = json!((updated / 1_000_000_000).to_string());
    }
    ev
}

pub async fn run(ctx: &Context) -> Result<usize, JobError> {
    let mut changed = 0;
    if let Some(egress) = &ctx.egress {
        changed += heal(ctx, egress).await?;
    }
    if let Some(s3) = &ctx.s3 {
        changed += crate::recording::verify_pending(&ctx.db, s3).await?;
    }
    Ok(changed)
}

async fn heal(ctx: &Context, egress: &Egress) -> Result<usize, JobError> {
    let quiet = interval(ctx.jobs.reconcile_after);
    // One statement per pooled connection: none is held across the Egress calls.
    let rows = ctx
        .db
        .query(
            "select session_id::text, room_name, room_sid, egress_id from fred.reconcile_candidates($1::text::interval, 200)",
            &[(&quiet, Type::TEXT)],
        )
        .await?;
    let mut changed = 0;
    for r in rows {
        let (id, room_name, room_sid, egress_id): (String, String, Option<String>, Option<String>) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let mut items = Vec::new();
        if let Some(eid) = &egress_id {
            match egress.list(Some(eid), None).await {
                Ok(found) => items.extend(found),
                Err(e) if e.is_not_found() => {
                    let reason = format!(
                        "LiveKit no longer knows egress {eid} ({})",
                        e.short_reason()
                    );
                    let lost: bool = ctx
                        .db
                        .scalar(
                            "select fred.mark_egress_lost($1::text::uuid, $2)",
                            &[(&id, Type::TEXT), (&reason, Type::TEXT)],
                        )
                        .await?
                        .unwrap_or(false);
                    changed += lost as usize;
                    tracing::warn!(room = %room_name, egress_id = %eid, "egress lost");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(room = %room_name, error = %e, "ListEgress failed; will retry next run");
                    continue;
                }
            }
        }
        // Everything LiveKit has for this room instance, to adopt an egress or stop extras.
        match egress.list(None, Some(&room_name)).await {
            Ok(found) => {
                for it in found {
                    let same_room = room_sid.as_deref().is_none_or(|s| {
                        it["room_id"]
                            .as_str()
                            .is_none_or(|r| r.is_empty() || r == s)
                    });
                    let is_known = items.iter().any(|k| k["egress_id"] == it["egress_id"]);
                    if !same_room || is_known {
                        continue;
                    }
                    let extra = egress_id
                        .as_deref()
                        .is_some_and(|mine| it["egress_id"].as_str() != Some(mine));
                    if extra {
                        if status_rank(&it["status"]) < 3
                            && let Some(other) = it["egress_id"].as_str()
                        {
                            match egress.stop(other).await {
                                Ok(_) => {
                                    tracing::warn!(room = %room_name, egress_id = other, "stopped an extra egress")
                                }
                                Err(e) => {
                                    tracing::warn!(room = %room_name, egress_id = other, error = %e, "StopEgress failed")
                                }
                            }
                        }
                    } else {
                        items.push(it);
                    }
                }
            }
            Err(e) => tracing::warn!(room = %room_name, error = %e, "ListEgress by room failed"),
        }
        if items.is_empty() {
            continue;
        }
        let events: Vec<Value> = items
            .iter()
            .map(|it| event_for(it, room_sid.as_deref(), &room_name))
            .collect();
        let batch = Value::Array(events).to_string();
        let results = ctx
            .db
            .query(
                "select result from fred.apply_livekit_events($1::text::jsonb) order by idx",
                &[(&batch, Type::TEXT)],
            )
            .await?;
        changed += results
            .iter()
            .filter(|r| r.get::<_, String>(0) == "applied")
            .count();
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listegress_items_become_webhooks() {
        let item = json!({"egress_id": "EG_1", "room_id": "RM_1", "room_name": "r", "status": "EGRESS_COMPLETE",
                          "updated_at": "1795511100000000000", "file_results": [{"filename": "r/a.ogg"}]});
        let ev = event_for(&item, None, "r");
        assert_eq!(ev["event"], "egress_ended");
        assert_eq!(ev["id"], "RC_EG_1_EGRESS_COMPLETE_1795511100000000000");
        assert_eq!(ev["createdAt"], "1795511100");
        assert_eq!(ev["room"]["sid"], "RM_1");
        let active = json!({"egress_id": "EG_1", "status": 1, "updated_at": 0});
        let ev = event_for(&active, Some("RM_2"), "r");
        assert_eq!(ev["event"], "egress_updated");
        assert_eq!(ev["room"]["sid"], "RM_2");
        assert!(ev.get("createdAt").is_none());
    }
}
