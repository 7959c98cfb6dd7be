//! Decoding one LiveKit webhook body (proto3 JSON) into what the merge needs.
//!
//! Accepts both key styles, camelCase (webhooks) and snake_case (Twirp responses), and int64
//! values as strings or numbers, like LiveKit's own SDK parsers. Unknown fields are ignored.

use crate::error::{Result, bad};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EgressStatus {
    Starting,
    Active,
    Ending,
    Complete,
    Failed,
    Aborted,
    LimitReached,
}

impl EgressStatus {
    fn parse(v: &Value) -> Result<Self> {
        use EgressStatus::*;
        let s = match v {
            Value::Number(n) => match n.as_i64() {
                Some(0) => Starting,
                Some(1) => Active,
                Some(2) => Ending,
                Some(3) => Complete,
                Some(4) => Failed,
                Some(5) => Aborted,
                Some(6) => LimitReached,
                _ => return Err(bad(format!("unknown egress status {n}"))),
            },
            Value::String(s) => match s.as_str() {
                "EGRESS_STARTING" => Starting,
                "EGRESS_ACTIVE" => Active,
                "EGRESS_ENDING" => Ending,
                "EGRESS_COMPLETE" => Complete,
                "EGRESS_FAILED" => Failed,
                "EGRESS_ABORTED" => Aborted,
                "EGRESS_LIMIT_REACHED" => LimitReached,
                _ => return Err(bad(format!("unknown egress status {s:?}"))),
            },
            _ => return Err(bad("egressInfo.status must be a string or a number")),
        };
        Ok(s)
    }

    pub fn name(self) -> &'static str {
        use EgressStatus::*;
        match self {
            Starting => "EGRESS_STARTING",
            Active => "EGRESS_ACTIVE",
            Ending => "EGRESS_ENDING",
            Complete => "EGRESS_COMPLETE",
            Failed => "EGRESS_FAILED",
            Aborted => "EGRESS_ABORTED",
            LimitReached => "EGRESS_LIMIT_REACHED",
        }
    }

    /// STARTING < ACTIVE < ENDING < final; the four final states share one rank.
    pub fn rank(self) -> u8 {
        use EgressStatus::*;
        match self {
            Starting => 0,
            Active => 1,
            Ending => 2,
            Complete | Failed | Aborted | LimitReached => 3,
        }
    }

    pub fn recording_status(self) -> &'static str {
        use EgressStatus::*;
        match self {
            Starting => "starting",
            Active | Ending => "recording",
            Complete | LimitReached => "uploaded",
            Failed | Aborted => "failed",
        }
    }

    pub fn leaves_file(self) -> bool {
        matches!(self, EgressStatus::Complete | EgressStatus::LimitReached)
    }
}

/// Why a completed recording is not where the session says: LiveKit wrote it to its backup storage.
pub const BACKUP_STORAGE: &str =
    "egress used backup storage; the file is not in the configured bucket";

#[derive(Debug, Default, PartialEq)]
pub struct Room {
    pub sid: Option<String>,
    pub name: Option<String>,
    /// Creation time in microseconds since the Unix epoch.
    pub created_us: Option<i64>,
    /// `user_id` from the room's JSON metadata, when it is a uuid.
    pub user_id: Option<String>,
}

#[derive(Debug, PartialEq)]
pub struct Egress {
    pub egress_id: Option<String>,
    pub room_sid: Option<String>,
    pub room_name: Option<String>,
    pub status: EgressStatus,
    pub updated_ns: i64,
    pub error: Option<String>,
    pub location: Option<String>,
    pub filename: Option<String>,
    pub size: Option<i64>,
    pub duration_ns: Option<i64>,
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
}

impl Egress {
    /// Where the object's URL starts when the event gives no location: `endpoint/bucket/`
    /// (the seed's rule; the merge appends the object key, `egress_merge!` in apply.rs).
    pub fn url_prefix(&self) -> Option<String> {
        match (&self.endpoint, &self.bucket) {
            (Some(e), Some(b)) => Some(format!("{}/{b}/", e.trim_end_matches('/'))),
            _ => None,
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum Kind {
    RoomStarted,
    RoomFinished,
    ParticipantJoined,
    ParticipantLeft,
    EgressStarted,
    EgressUpdated,
    EgressEnded,
    Other,
}

#[derive(Debug, PartialEq)]
pub struct Event {
    pub id: String,
    pub event: String,
    pub kind: Kind,
    /// `createdAt` in microseconds since the Unix epoch.
    pub created_us: Option<i64>,
    pub room: Room,
    pub egress_participant: bool,
    pub egress: Option<Egress>,
}

impl Event {
    /// Ignored events are recorded in the ledger but change no session.
    pub fn ignored(&self) -> bool {
        self.kind == Kind::Other || self.egress_participant
    }

    pub fn room_sid(&self) -> Option<&str> {
        self.room
            .sid
            .as_deref()
            .or(self.egress.as_ref().and_then(|e| e.room_sid.as_deref()))
    }

    pub fn room_name(&self) -> Option<&str> {
        self.room
            .name
            .as_deref()
            .or(self.egress.as_ref().and_then(|e| e.room_name.as_deref()))
    }
}

fn snake(camel: &str) -> String {
    let mut s = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// A field by its camelCase name, or its snake_case twin. JSON null counts as absent.
fn field<'a>(o: &'a Map<String, Value>, camel: &str) -> Option<&'a Value> {
    match o.get(camel) {
        Some(Value::Null) | None => match o.get(&snake(camel)) {
            Some(Value::Null) | None => None,
            v => v,
        },
        v => v,
    }
}

fn object<'a>(o: &'a Map<String, Value>, camel: &str) -> Result<Option<&'a Map<String, Value>>> {
    match field(o, camel) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(bad(format!("{camel} must be an object"))),
    }
}

/// A string field; the empty string is proto3's default and counts as absent.
fn string(o: &Map<String, Value>, camel: &str) -> Result<Option<String>> {
    match field(o, camel) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("{camel} must be a string"))),
    }
}

/// An int64: a JSON integer or a string holding one.
fn int64(o: &Map<String, Value>, camel: &str) -> Result<Option<i64>> {
    let err = || bad(format!("{camel} must be an integer"));
    match field(o, camel) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(err),
        Some(Value::String(s)) => s.parse::<i64>().map(Some).map_err(|_| err()),
        Some(_) => Err(err()),
    }
}

fn boolean(o: &Map<String, Value>, camel: &str) -> Result<bool> {
    match field(o, camel) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(format!("{camel} must be a boolean"))),
    }
}

fn seconds_to_us(camel: &str, s: i64) -> Result<i64> {
    // Keep times inside what timestamptz can hold (years 1..9999).
    if !(-62_135_596_800..=253_402_300_799).contains(&s) {
        return Err(bad(format!("{camel} is out of range")));
    }
    Ok(s * 1_000_000)
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn room(o: &Map<String, Value>) -> Result<Room> {
    let created_us = match int64(o, "creationTimeMs")? {
        Some(ms) => {
            Some(seconds_to_us("creationTimeMs", ms.div_euclid(1000))? + ms.rem_euclid(1000) * 1000)
        }
        None => int64(o, "creationTime")?
            .map(|s| seconds_to_us("creationTime", s))
            .transpose()?,
    };
    // Metadata is the app's own string; only a JSON object with a uuid `user_id` counts. What
    // jsonb cannot hold (a NUL character) does not count either, as in the SQL install.
    let user_id = string(o, "metadata")?
        .and_then(|m| serde_json::from_str::<Value>(&m).ok())
        .filter(|m| !has_nul(m))
        .and_then(|m| m.get("user_id").and_then(Value::as_str).map(str::to_owned))
        .filter(|u| is_uuid(u))
        .map(|u| u.to_ascii_lowercase());
    Ok(Room {
        sid: string(o, "sid")?,
        name: string(o, "name")?,
        created_us,
        user_id,
    })
}

/// True when a string or key anywhere in `v` holds U+0000, which jsonb refuses.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The echoed S3 upload of the egress request, from any request type's first file output.
fn s3_of(info: &Map<String, Value>) -> Result<Option<&Map<String, Value>>> {
    for req in [
        "roomComposite",
        "web",
        "participant",
        "trackComposite",
        "track",
    ] {
        let Some(r) = object(info, req)? else {
            continue;
        };
        if let Some(Value::Array(outs)) = field(r, "fileOutputs")
            && let Some(Value::Object(first)) = outs.first()
            && let Some(s3) = object(first, "s3")?
        {
            return Ok(Some(s3));
        }
        if let Some(file) = object(r, "file")?
            && let Some(s3) = object(file, "s3")?
        {
            return Ok(Some(s3));
        }
    }
    Ok(None)
}

fn egress(info: &Map<String, Value>) -> Result<Egress> {
    let status = match field(info, "status") {
        None => EgressStatus::Starting,
        Some(v) => EgressStatus::parse(v)?,
    };
    let first = match field(info, "fileResults") {
        None => None,
        Some(Value::Array(a)) => match a.first() {
            None => None,
            Some(Value::Object(f)) => Some(f),
            Some(_) => return Err(bad("fileResults entries must be objects")),
        },
        Some(_) => return Err(bad("fileResults must be an array")),
    };
    // The deprecated single-file copy stands in when fileResults is absent.
    let first = match first {
        Some(f) => Some(f),
        None => object(info, "file")?,
    };
    let (filename, location, size, duration_ns) = match first {
        Some(f) => (
            string(f, "filename")?,
            string(f, "location")?,
            int64(f, "size")?,
            int64(f, "duration")?,
        ),
        None => (None, None, None, None),
    };
    let (endpoint, bucket) = match s3_of(info)? {
        Some(s3) => (string(s3, "endpoint")?, string(s3, "bucket")?),
        None => (None, None),
    };
    Ok(Egress {
        egress_id: string(info, "egressId")?,
        room_sid: string(info, "roomId")?,
        room_name: string(info, "roomName")?,
        status,
        updated_ns: int64(info, "updatedAt")?.unwrap_or(0),
        error: string(info, "error")?
            .or(string(info, "details")?.filter(|_| status.rank() == 3 && !status.leaves_file()))
            .or(
                (boolean(info, "backupStorageUsed")? && status.leaves_file())
                    .then(|| BACKUP_STORAGE.to_owned()),
            ),
        location,
        filename,
        size: size.filter(|s| *s > 0),
        duration_ns: duration_ns.filter(|d| *d > 0),
        endpoint,
        bucket,
    })
}

/// Decodes and validates a body. Any bad value or shape is a `BadValue` (22023).
pub fn parse(v: &Value) -> Result<Event> {
    let Value::Object(o) = v else {
        return Err(bad("a LiveKit event must be a JSON object"));
    };
    let event = match o.get("event") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(bad("a LiveKit event needs a string \"event\"")),
    };
    let id = match o.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(bad("a LiveKit event needs a string \"id\"")),
    };
    let kind = match event.as_str() {
        "room_started" => Kind::RoomStarted,
        "room_finished" => Kind::RoomFinished,
        "participant_joined" => Kind::ParticipantJoined,
        "participant_left" => Kind::ParticipantLeft,
        "egress_started" => Kind::EgressStarted,
        "egress_updated" => Kind::EgressUpdated,
        "egress_ended" => Kind::EgressEnded,
        _ => Kind::Other,
    };
    let created_us = int64(o, "createdAt")?
        .map(|s| seconds_to_us("createdAt", s))
        .transpose()?;
    let room = match object(o, "room")? {
        Some(r) => room(r)?,
        None => Room::default(),
    };
    let egress_participant = match object(o, "participant")? {
        Some(p) => {
            matches!(field(p, "kind"), Some(Value::String(k)) if k == "EGRESS")
                // A number compares as jsonb does: 3, 3.0 and 3e0 are all EGRESS.
                || matches!(field(p, "kind"), Some(Value::Number(n)) if n.as_f64() == Some(3.0))
        }
        None => false,
    };
    let egress = match kind {
        Kind::EgressStarted | Kind::EgressUpdated | Kind::EgressEnded => {
            match object(o, "egressInfo")? {
                Some(info) => Some(egress(info)?),
                None => return Err(bad(format!("{event} needs an object \"egressInfo\""))),
            }
        }
        _ => None,
    };
    let ev = Event {
        id,
        event,
        kind,
        created_us,
        room,
        egress_participant,
        egress,
    };
    if !ev.ignored() && ev.room_sid().is_none() && ev.room_name().is_none() {
        return Err(bad(format!("{} names no room", ev.event)));
    }
    let too_long = |s: Option<&str>| s.is_some_and(|s| s.chars().count() > 256);
    if too_long(ev.room_sid()) || too_long(ev.room_name()) {
        return Err(bad("room names and sids are at most 256 characters"));
    }
    // Validated even where unused, so a malformed body is rejected whatever its type.
    if let Some(info) = object(o, "egressInfo")? {
        boolean(info, "backupStorageUsed")?;
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_key_styles_and_int64_forms() {
        let camel = json!({"event":"room_started","id":"EV_1","createdAt":"100",
            "room":{"sid":"RM_1","name":"r","creationTime":"90","metadata":"{\"user_id\":\"7C9E6679-7425-40DE-944B-E07FC1F90AE7\"}"}});
        let snake = json!({"event":"room_started","id":"EV_1","created_at":100,
            "room":{"sid":"RM_1","name":"r","creation_time":90,"metadata":"{\"user_id\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\"}"}});
        let a = parse(&camel).unwrap();
        assert_eq!(a, parse(&snake).unwrap());
        assert_eq!(a.created_us, Some(100_000_000));
        assert_eq!(a.room.created_us, Some(90_000_000));
        assert_eq!(
            a.room.user_id.as_deref(),
            Some("7c9e6679-7425-40de-944b-e07fc1f90ae7")
        );
    }

    #[test]
    fn rejects_bad_shapes() {
        for bad_body in [
            json!([1]),
            json!({"id":"EV_1"}),
            json!({"event":"room_started"}),
            json!({"event":"room_started","id":7}),
            json!({"event":"room_started","id":"EV_1","createdAt":"soon","room":{"sid":"RM"}}),
            json!({"event":"room_started","id":"EV_1","createdAt":true,"room":{"sid":"RM"}}),
            json!({"event":"room_started","id":"EV_1","room":"RM"}),
            json!({"event":"egress_ended","id":"EV_1","room":{"sid":"RM"}}),
            json!({"event":"egress_ended","id":"EV_1","room":{"sid":"RM"},"egressInfo":{"status":"EGRESS_BOGUS"}}),
            json!({"event":"room_finished","id":"EV_1"}),
        ] {
            assert!(parse(&bad_body).is_err(), "{bad_body} should be rejected");
        }
    }

    #[test]
    fn egress_url_fallbacks() {
        let e = |info: Value| {
            parse(&json!({"event":"egress_ended","id":"E","room":{"sid":"RM","name":"room-1"},"egressInfo":info})).unwrap().egress.unwrap()
        };
        let s3 = json!({"roomComposite":{"fileOutputs":[{"s3":{"endpoint":"https://x/s3/","bucket":"b"}}]}});
        assert_eq!(
            e(s3.clone()).url_prefix().as_deref(),
            Some("https://x/s3/b/")
        );
        let mut no_bucket = s3;
        no_bucket["roomComposite"]["fileOutputs"][0]["s3"]
            .as_object_mut()
            .unwrap()
            .remove("bucket");
        assert_eq!(e(no_bucket).url_prefix(), None);
        assert_eq!(e(json!({"status":3})).status, EgressStatus::Complete);
        assert_eq!(e(json!({})).status, EgressStatus::Starting);
    }

    #[test]
    fn egress_participant_is_ignored() {
        let ev = parse(&json!({"event":"participant_joined","id":"E","room":{"sid":"RM"},"participant":{"kind":"EGRESS"}})).unwrap();
        assert!(ev.ignored());
        let ev = parse(&json!({"event":"ingress_started","id":"E"})).unwrap();
        assert!(ev.ignored());
        // As jsonb compares numbers: 3.0 is 3 (found by the differential test).
        for kind in [
            json!(3),
            json!(3.0),
            serde_json::from_str::<Value>("3e0").unwrap(),
        ] {
            let ev = parse(&json!({"event":"participant_joined","id":"E","room":{"sid":"RM"},"participant":{"kind":kind}})).unwrap();
            assert!(ev.ignored(), "kind {kind}");
        }
        let ev = parse(&json!({"event":"participant_joined","id":"E","room":{"sid":"RM"},"participant":{"kind":3.5}})).unwrap();
        assert!(!ev.ignored());
    }

    #[test]
    fn metadata_jsonb_cannot_hold_names_no_owner() {
        // jsonb refuses \u0000, so the SQL install cannot read such metadata: neither may Rust.
        let meta = r#"{"user_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","x":"\u0000"}"#;
        let ev =
            parse(&json!({"event":"room_started","id":"E","room":{"sid":"RM","metadata":meta}}))
                .unwrap();
        assert_eq!(ev.room.user_id, None);
        let meta = r#"{"user_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","x":"\\u0000"}"#;
        let ev =
            parse(&json!({"event":"room_started","id":"E","room":{"sid":"RM","metadata":meta}}))
                .unwrap();
        assert!(ev.room.user_id.is_some(), "an escaped backslash is no NUL");
    }
}
