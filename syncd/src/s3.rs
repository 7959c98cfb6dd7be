//! The S3 client for recordings (Supabase Storage's S3 API or any S3): HeadObject to confirm an
//! upload, presigned GETs for playback, DeleteObject for retention. It never writes to the
//! database: callers hand its answers to the SQL functions.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use secrecy::ExposeSecret;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The store could not be asked (connection, auth, 5xx): retry later, never "missing".
    #[error("S3 request failed: {0}")]
    Request(String),
    #[error("presigned URLs last at most 7 days")]
    TooLong,
}

#[derive(Clone)]
pub struct S3 {
    client: aws_sdk_s3::Client,
    pub bucket: String,
}

/// The SDK joins an endpoint's path and the bucket without a slash (awslabs/aws-sdk-rust#1387):
/// `…/storage/v1/s3` must be given as `…/storage/v1/s3/`.
pub fn sdk_endpoint(endpoint: &str) -> String {
    let after_scheme = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(endpoint);
    match after_scheme.split_once('/') {
        Some((_, path)) if !path.is_empty() && !endpoint.ends_with('/') => format!("{endpoint}/"),
        _ => endpoint.to_owned(),
    }
}

impl S3 {
    pub fn new(cfg: &crate::config::S3) -> S3 {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http)
            .endpoint_url(sdk_endpoint(&cfg.endpoint))
            .force_path_style(true)
            .region(Region::new(cfg.region.clone()))
            .credentials_provider(Credentials::new(
                &cfg.access_key,
                cfg.secret.expose_secret(),
                None,
                None,
                "syncd",
            ))
            .build();
        S3 {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: cfg.bucket.clone(),
        }
    }

    /// The object's size, or `None` when S3 says it does not exist.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<i64>, S3Error> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(o.content_length().unwrap_or(0))),
            Err(e) => {
                let not_found = e
                    .as_service_error()
                    .map(|s| s.is_not_found())
                    .unwrap_or(false)
                    || e.raw_response()
                        .map(|r| r.status().as_u16() == 404)
                        .unwrap_or(false);
                if not_found {
                    Ok(None)
                } else {
                    Err(S3Error::Request(format!("{e:?}")))
                }
            }
        }
    }

    pub async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires: Duration,
    ) -> Result<String, S3Error> {
        if expires > Duration::from_secs(7 * 24 * 3600) {
            return Err(S3Error::TooLong);
        }
        let conf =
            PresigningConfig::expires_in(expires).map_err(|e| S3Error::Request(e.to_string()))?;
        let req = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(conf)
            .await
            .map_err(|e| S3Error::Request(format!("{e:?}")))?;
        Ok(req.uri().to_owned())
    }

    /// Deletes an object; deleting one that is already gone succeeds.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| S3Error::Request(format!("{e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_with_a_path_gets_a_trailing_slash() {
        assert_eq!(
            sdk_endpoint("https://ref.supabase.co/storage/v1/s3"),
            "https://ref.supabase.co/storage/v1/s3/"
        );
        assert_eq!(
            sdk_endpoint("https://ref.supabase.co/storage/v1/s3/"),
            "https://ref.supabase.co/storage/v1/s3/"
        );
        assert_eq!(
            sdk_endpoint("http://127.0.0.1:9000"),
            "http://127.0.0.1:9000"
        );
    }

    #[tokio::test]
    async fn presigned_url_keeps_the_supabase_path() {
        let s3 = S3::new(&crate::config::S3 {
            access_key: "ak".into(),
            secret: "sk".into(),
            endpoint: "https://ref.supabase.co/storage/v1/s3".into(),
            bucket: "voice-recordings".into(),
            region: "eu-central-1".into(),
            key_template: "{room_name}/{time}.ogg".into(),
        });
        let url = s3
            .presign_get(
                "voice-recordings",
                "room-1/a.ogg",
                Duration::from_secs(3600),
            )
            .await
            .unwrap();
        assert!(
            url.starts_with("https://ref.supabase.co/storage/v1/s3/voice-recordings/room-1/a.ogg?"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Expires=3600"), "{url}");
        assert!(matches!(
            s3.presign_get("b", "k", Duration::from_secs(8 * 24 * 3600))
                .await,
            Err(S3Error::TooLong)
        ));
    }
}
