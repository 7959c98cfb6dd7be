//! LiveKit webhook signatures, checked on the raw body bytes.
//!
//! The `Authorization` header is a bare HS256 JWT (no `Bearer `) whose `sha256` claim is the
//! padded standard base64 of SHA-256(body). The JWT itself (HS256 only, known `iss`, `exp`
//! required, `nbf` honoured, 60 s leeway) is checked by the official crate.

use base64::Engine;
use livekit_api::access_token::{Claims, TokenVerifier};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing authorization")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("unknown api key")]
    UnknownKey,
    #[error("bad token")]
    BadToken,
    #[error("body hash mismatch")]
    BadHash,
}

impl VerifyError {
    /// The label used in metrics; never sent to the client.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Missing => "missing",
            VerifyError::Malformed => "malformed",
            VerifyError::UnknownKey => "unknown_key",
            VerifyError::BadToken => "bad_token",
            VerifyError::BadHash => "bad_hash",
        }
    }
}

/// One verifier per API key, so keys can be rotated.
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, TokenVerifier>,
}

impl Verifier {
    pub fn new(keys: &[(String, String)]) -> Self {
        let keys = keys
            .iter()
            .map(|(k, s)| (k.clone(), TokenVerifier::with_api_key(k, s)))
            .collect();
        Verifier { keys }
    }

    pub fn verify(&self, token: Option<&str>, body: &[u8]) -> Result<(), VerifyError> {
        let token = token.ok_or(VerifyError::Missing)?;
        // `iss` picks the key; the signature is checked right after by that key's verifier.
        let unverified = Claims::from_unverified(token).map_err(|_| VerifyError::Malformed)?;
        let verifier = self
            .keys
            .get(&unverified.iss)
            .ok_or(VerifyError::UnknownKey)?;
        let claims = verifier.verify(token).map_err(|_| VerifyError::BadToken)?;
        let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
        let claimed = claims.sha256.as_bytes();
        if claimed.len() != expected.len() || !bool::from(claimed.ct_eq(expected.as_bytes())) {
            return Err(VerifyError::BadHash);
        }
        Ok(())
    }
}
