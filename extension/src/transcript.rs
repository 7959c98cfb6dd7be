//! Transcript caps and shape.

use crate::error::{FredError, Result, bad};
use crate::jsonb::{Container, Node, object_text_len, text_len};
use serde_json::Value;

/// Checks a transcript given as its jsonb text form (`transcript::text`), so the byte cap
/// measures exactly `octet_length(transcript::text)`. Returns the number of entries.
pub fn check(text: &str, max_entries: usize, max_bytes: usize) -> Result<usize> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("transcript is not JSON: {e}")))?;
    let Value::Array(entries) = value else {
        return Err(bad("transcript must be a JSON array"));
    };
    if entries.len() > max_entries {
        return Err(FredError::OverCap(format!(
            "transcript has {} entries; the cap is {max_entries} (fred.max_transcript_entries)",
            entries.len()
        )));
    }
    if text.len() > max_bytes {
        return Err(FredError::OverCap(format!(
            "transcript is {} bytes; the cap is {max_bytes} (fred.max_transcript_bytes)",
            text.len()
        )));
    }
    if let Some(i) = entries.iter().position(|e| !entry_ok(e)) {
        return Err(bad(format!(
            "transcript entry {i} must be an object with a string \"text\" and a string \"speaker\" or \"role\""
        )));
    }
    Ok(entries.len())
}

/// The same check on a jsonb's binary form (no text, no tree): the byte cap is still exactly
/// `octet_length(transcript::text)`, computed from the binary. Same errors, same order.
pub fn check_binary(
    top: Container<'_>,
    max_entries: usize,
    max_bytes: usize,
    numeric_len: &dyn Fn(&[u8]) -> usize,
) -> Result<usize> {
    if !top.is_array() || top.is_scalar() {
        return Err(bad("transcript must be a JSON array"));
    }
    let n = top.count();
    if n > max_entries {
        return Err(FredError::OverCap(format!(
            "transcript has {n} entries; the cap is {max_entries} (fred.max_transcript_entries)"
        )));
    }
    // One walk: the text length (the byte cap) and the first bad entry (reported after the cap).
    let mut bytes = 2 + if n > 0 { 2 * (n - 1) } else { 0 };
    let mut first_bad = None;
    for (i, e) in top.children().enumerate() {
        let ok = match e {
            Node::Container(o) if o.is_object() => {
                let (mut text, mut who) = (false, false);
                bytes += object_text_len(o, numeric_len, |k, v| {
                    let is_str = matches!(v, Node::String(_));
                    match k {
                        b"text" => text = is_str,
                        b"speaker" | b"role" => who |= is_str,
                        _ => {}
                    }
                });
                text && who
            }
            _ => {
                bytes += text_len(e, numeric_len);
                false
            }
        };
        if first_bad.is_none() && !ok {
            first_bad = Some(i);
        }
    }
    if bytes > max_bytes {
        return Err(FredError::OverCap(format!(
            "transcript is {bytes} bytes; the cap is {max_bytes} (fred.max_transcript_bytes)"
        )));
    }
    if let Some(i) = first_bad {
        return Err(bad(format!(
            "transcript entry {i} must be an object with a string \"text\" and a string \"speaker\" or \"role\""
        )));
    }
    Ok(n)
}

fn entry_ok(e: &Value) -> bool {
    let Value::Object(o) = e else { return false };
    let is_str = |k: &str| matches!(o.get(k), Some(Value::String(_)));
    is_str("text") && (is_str("speaker") || is_str("role"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_caps() {
        assert_eq!(check("[]", 500, 1 << 20), Ok(0));
        assert_eq!(
            check(r#"[{"text": "hi", "role": "user", "t": 1}]"#, 500, 1 << 20),
            Ok(1)
        );
        let two = r#"[{"text": "a", "speaker": "x"}, {"text": "b", "speaker": "y"}]"#;
        assert!(
            matches!(check(two, 1, 1 << 20), Err(FredError::OverCap(m)) if m.contains("2 entries") && m.contains("cap is 1"))
        );
        assert!(matches!(check(two, 5, 10), Err(FredError::OverCap(m)) if m.contains("bytes")));
    }

    #[test]
    fn names_first_bad_index() {
        let t = r#"[{"text": "a", "speaker": "x"}, {"text": 1, "speaker": "y"}, 3]"#;
        assert!(
            matches!(check(t, 500, 1 << 20), Err(FredError::BadValue(m)) if m.contains("entry 1 "))
        );
        assert!(matches!(
            check(r#"{"text": "a"}"#, 500, 1 << 20),
            Err(FredError::BadValue(_))
        ));
        assert!(
            matches!(check(r#"[{"text": "a", "speaker": null}]"#, 500, 1 << 20), Err(FredError::BadValue(m)) if m.contains("entry 0 "))
        );
    }
}
