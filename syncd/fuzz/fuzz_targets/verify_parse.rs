//! Fuzzes the webhook door: signature verification on arbitrary tokens and bodies, then the
//! keying of a body (JSON or not). Neither may panic, and a random token never verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncd::webhook::{key_body, verify::Verifier};

fuzz_target!(|data: &[u8]| {
    let split = data.first().copied().unwrap_or(0) as usize % (data.len().max(1));
    let (token, body) = data.split_at(split.min(data.len()));
    let verifier = Verifier::new(
        &[("APIfuzz".to_owned(), "fuzz-secret".into())],
        std::time::Duration::from_secs(600),
    );
    let token = String::from_utf8_lossy(token);
    assert!(verifier.verify(Some(&token), body).is_err());
    let keyed = key_body(body);
    assert!(!keyed.key.is_empty());
});
