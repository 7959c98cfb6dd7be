//! LiveKit webhook signatures, in two steps so a stranger costs no body read:
//! [`Verifier::check_token`] on the `Authorization` header alone, then, once the body has
//! been read, [`Signed::check_body`] on its bytes.
//!
//! The header is a bare HS256 JWT (no `Bearer `) whose `sha256` claim is the padded standard
//! base64 of SHA-256(body). The JWT itself (HS256 only, known `iss`, `exp` required, `nbf`
//! honoured, 60 s leeway) is checked by the official crate; on top, a token may not stay valid
//! for longer than `SYNCD_MAX_TOKEN_TTL` from now.

use crate::metrics::RejectReason;
use base64::Engine;
use livekit_api::access_token::{Claims, TokenVerifier};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
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
    #[error("token valid for too long")]
    TokenLifetime,
    #[error("body hash mismatch")]
    BadHash,
}

impl VerifyError {
    /// The label used in metrics; never sent to the client.
    pub fn reason(&self) -> RejectReason {
        match self {
            VerifyError::Missing => RejectReason::Missing,
            VerifyError::Malformed => RejectReason::Malformed,
            VerifyError::UnknownKey => RejectReason::UnknownKey,
            VerifyError::BadToken => RejectReason::BadToken,
            VerifyError::TokenLifetime => RejectReason::TokenLifetime,
            VerifyError::BadHash => RejectReason::BadHash,
        }
    }
}

/// One verifier per API key, so keys can be rotated.
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, TokenVerifier>,
    max_ttl: Duration,
}

/// A token that passed: what remains is to check the body against its `sha256` claim.
#[derive(Debug)]
pub struct Signed {
    sha256: String,
}

impl Signed {
    pub fn check_body(&self, body: &[u8]) -> Result<(), VerifyError> {
        let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
        let claimed = self.sha256.as_bytes();
        if claimed.len() != expected.len() || !bool::from(claimed.ct_eq(expected.as_bytes())) {
            return Err(VerifyError::BadHash);
        }
        Ok(())
    }
}

impl Verifier {
    pub fn new(keys: &[(String, SecretString)], max_ttl: Duration) -> Self {
        let keys = keys
            .iter()
            .map(|(k, s)| (k.clone(), TokenVerifier::with_api_key(k, s.expose_secret())))
            .collect();
        Verifier { keys, max_ttl }
    }

    /// Checks the token from the header; no body needed.
    pub fn check_token(&self, token: Option<&str>) -> Result<Signed, VerifyError> {
        let token = token.ok_or(VerifyError::Missing)?;
        // `iss` picks the key; the signature is checked right after by that key's verifier.
        let unverified = Claims::from_unverified(token).map_err(|_| VerifyError::Malformed)?;
        let verifier = self
            .keys
            .get(&unverified.iss)
            .ok_or(VerifyError::UnknownKey)?;
        let claims = verifier.verify(token).map_err(|_| VerifyError::BadToken)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if (claims.exp as u64).saturating_sub(now) > self.max_ttl.as_secs() {
            return Err(VerifyError::TokenLifetime);
        }
        Ok(Signed {
            sha256: claims.sha256,
        })
    }

    /// Both steps at once, for callers that already hold the body.
    pub fn verify(&self, token: Option<&str>, body: &[u8]) -> Result<(), VerifyError> {
        self.check_token(token)?.check_body(body)
    }
}
