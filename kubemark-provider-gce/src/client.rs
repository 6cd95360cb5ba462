//! The Compute clients and the token: Application Default Credentials (or what the builder was
//! given), the configured endpoint, retries of throttling and transient errors, and operation
//! polling with back-off.

use std::time::Duration;

use google_cloud_auth::credentials::AccessTokenCredentials;
use google_cloud_compute_v1::client::{Addresses, Disks, Firewalls, Instances};
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::{LimitedAttemptCount, RetryPolicy};
use google_cloud_gax::retry_result::RetryResult;
use google_cloud_gax::retry_state::RetryState;
use kubemark_core::provider::{Error, ErrorKind, Result};
use secrecy::{ExposeSecret, SecretString};

use crate::{GceConfig, PROVIDER_NAME};

/// The clients of one provider, built on first use.
#[derive(Debug)]
pub(crate) struct Clients {
    pub(crate) instances: Instances,
    pub(crate) disks: Disks,
    pub(crate) addresses: Addresses,
    pub(crate) firewalls: Firewalls,
    /// For Artifact Registry, which the Compute crate does not cover.
    pub(crate) http: reqwest::Client,
    /// The first wait between polls of an operation (and between retries); it doubles up to 10 s.
    pub(crate) poll: Duration,
    token: AccessTokenCredentials,
}

/// Retries what a retry can fix: throttling (429), server errors, broken connections. Inserts
/// are safe to retry because each carries a `requestId`, which Compute de-duplicates.
#[derive(Debug)]
struct Transient;

impl RetryPolicy for Transient {
    fn on_error(&self, _: &RetryState, error: GaxError) -> RetryResult {
        let transient = error.is_transient_and_before_rpc()
            || error.is_io()
            || error.is_connect()
            || matches!(error.http_status_code(), Some(429 | 500 | 502 | 503 | 504));
        if transient {
            RetryResult::Continue(error)
        } else {
            RetryResult::Permanent(error)
        }
    }
}

fn backoff(initial: Duration) -> google_cloud_gax::exponential_backoff::ExponentialBackoff {
    ExponentialBackoffBuilder::new()
        .with_initial_delay(initial)
        .with_maximum_delay(Duration::from_secs(10))
        .with_scaling(2.0)
        .clamp()
}

fn build_error(e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        PROVIDER_NAME,
        "connect",
        format!("building the Compute client: {e}"),
    )
}

macro_rules! client {
    ($t:ty, $config:expr, $token:expr, $poll:expr) => {{
        let mut b = <$t>::builder()
            .with_credentials($token.clone())
            .with_retry_policy(LimitedAttemptCount::custom(Transient, 5))
            .with_backoff_policy(backoff($poll * 2))
            .with_polling_backoff_policy(backoff($poll));
        if let Some(e) = &$config.endpoint {
            b = b.with_endpoint(e.clone());
        }
        b.build().await.map_err(build_error)?
    }};
}

impl Clients {
    pub(crate) async fn new(
        config: &GceConfig,
        credentials: Option<AccessTokenCredentials>,
        poll: Duration,
    ) -> Result<Self> {
        let token = match credentials {
            Some(c) => c,
            None => google_cloud_auth::credentials::Builder::default()
                .build_access_token_credentials()
                .map_err(|e| {
                    Error::new(
                        ErrorKind::PermissionDenied,
                        PROVIDER_NAME,
                        "credentials",
                        format!(
                            "no usable Google credentials (run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS): {e}"
                        ),
                    )
                })?,
        };
        Ok(Self {
            instances: client!(Instances, config, token, poll),
            disks: client!(Disks, config, token, poll),
            addresses: client!(Addresses, config, token, poll),
            firewalls: client!(Firewalls, config, token, poll),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(build_error)?,
            poll,
            token,
        })
    }

    /// A current OAuth access token (for Artifact Registry and for pushing images).
    pub(crate) async fn access_token(&self) -> Result<SecretString> {
        let t = self.token.access_token().await.map_err(|e| {
            Error::new(
                if e.is_transient() {
                    ErrorKind::Temporary
                } else {
                    ErrorKind::PermissionDenied
                },
                PROVIDER_NAME,
                "access_token",
                format!("getting an OAuth access token: {e}"),
            )
        })?;
        Ok(SecretString::from(t.token))
    }

    /// A bearer header value for `token`.
    pub(crate) fn bearer(token: &SecretString) -> String {
        format!("Bearer {}", token.expose_secret())
    }
}

/// A fresh request id (a UUID v4, as Compute requires), so that a retried insert is one insert.
pub(crate) fn request_id() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
