//! Compute and Artifact Registry errors as provider errors: one kind per cause, one line, Google's
//! error reason (`notFound`, `resourceInUseByAnotherResource`, `QUOTA_EXCEEDED`) kept as context.

use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::Code;
use kubemark_core::provider::{Error, ErrorKind, Result};

use crate::PROVIDER_NAME;

/// The kind of an HTTP status from either API.
pub(crate) fn kind_of_status(status: u16) -> ErrorKind {
    match status {
        404 => ErrorKind::NotFound,
        409 => ErrorKind::AlreadyExists,
        401 | 403 => ErrorKind::PermissionDenied,
        429 | 500 | 502 | 503 | 504 => ErrorKind::Temporary,
        400 => ErrorKind::InvalidConfig,
        _ => ErrorKind::Unexpected,
    }
}

fn kind_of_code(code: Code) -> ErrorKind {
    match code {
        Code::NotFound => ErrorKind::NotFound,
        Code::AlreadyExists => ErrorKind::AlreadyExists,
        Code::PermissionDenied | Code::Unauthenticated => ErrorKind::PermissionDenied,
        // Quota: no retry will help, the project's limits must change.
        Code::ResourceExhausted | Code::InvalidArgument | Code::FailedPrecondition => {
            ErrorKind::InvalidConfig
        }
        Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Internal => {
            ErrorKind::Temporary
        }
        _ => ErrorKind::Unexpected,
    }
}

/// `error.message` and `error.errors[0].reason` of Google's JSON error body.
pub(crate) fn parse_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let e = &v["error"];
    let message = e["message"].as_str().map(String::from);
    let reason = e["errors"][0]["reason"]
        .as_str()
        .or_else(|| e["status"].as_str())
        .map(String::from);
    (message, reason)
}

/// An error and its sources on one line.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s.replace('\n', " ")
}

/// Maps a client error of `operation` to a provider error.
pub(crate) fn map(operation: &'static str, e: GaxError) -> Error {
    if e.is_authentication() {
        return Error::new(
            ErrorKind::PermissionDenied,
            PROVIDER_NAME,
            operation,
            format!(
                "no usable Google credentials (run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS): {}",
                one_line(&e)
            ),
        );
    }
    let (body_message, mut reason) = e.http_payload().map(|b| parse_body(b)).unwrap_or_default();
    // The client parses Google's error body into a status whose details hold the reason.
    if reason.is_none() {
        reason = e.status().and_then(|s| {
            s.details.iter().find_map(|d| match d {
                google_cloud_gax::error::rpc::StatusDetails::ErrorInfo(i) => {
                    Some(i.reason.clone()).filter(|r| !r.is_empty())
                }
                _ => None,
            })
        });
    }
    let kind = if let Some(status) = e.http_status_code() {
        kind_of_status(status)
    } else if let Some(s) = e.status() {
        kind_of_code(s.code)
    } else if e.is_io() || e.is_connect() || e.is_timeout() || e.is_transport() {
        ErrorKind::Temporary
    } else {
        ErrorKind::Unexpected
    };
    let message = body_message
        .or_else(|| {
            e.status()
                .map(|s| s.message.clone())
                .filter(|m| !m.is_empty())
        })
        .unwrap_or_else(|| e.to_string())
        .replace('\n', " ");
    let mut err = Error::new(kind, PROVIDER_NAME, operation, message);
    if let Some(r) = reason {
        err = err.with_context("reason", r);
    } else if let Some(s) = e.status() {
        err = err.with_context("reason", s.code.name());
    }
    err
}

/// The end of a Compute operation: the poller answers `Ok` for an operation that is done, even
/// when it failed (quota, a missing image), so its `error` is looked at here.
pub(crate) fn finish(
    operation: &'static str,
    result: std::result::Result<google_cloud_compute_v1::model::Operation, GaxError>,
) -> Result<()> {
    let op = result.map_err(|e| map(operation, e))?;
    let first = op.error.as_ref().and_then(|e| e.errors.first());
    if first.is_none() && op.http_error_status_code.is_none() {
        return Ok(());
    }
    let code = first.and_then(|e| e.code.clone());
    let kind = match code.as_deref() {
        // No retry helps; the project's quota or the zone's capacity must change.
        Some("QUOTA_EXCEEDED") => ErrorKind::InvalidConfig,
        Some("ZONE_RESOURCE_POOL_EXHAUSTED") => ErrorKind::Temporary,
        _ => op
            .http_error_status_code
            .and_then(|s| u16::try_from(s).ok())
            .map(kind_of_status)
            .unwrap_or(ErrorKind::Unexpected),
    };
    let message = first
        .and_then(|e| e.message.clone())
        .or(op.http_error_message.clone())
        .unwrap_or_else(|| "the operation failed".into());
    let mut err = Error::new(kind, PROVIDER_NAME, operation, message.replace('\n', " "));
    if let Some(c) = code {
        err = err.with_context("reason", c);
    }
    Err(err)
}

/// An error of our own making.
pub(crate) fn unexpected(operation: &'static str, message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unexpected, PROVIDER_NAME, operation, message)
}

/// Whether `e` carries Google's error reason `reason`.
pub(crate) fn has_reason(e: &Error, reason: &str) -> bool {
    e.context()
        .iter()
        .any(|(k, v)| *k == "reason" && v == reason)
}

/// The answer of a `get`: `None` when the resource is not there.
pub(crate) fn found<T>(
    operation: &'static str,
    r: std::result::Result<T, GaxError>,
) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) => match map(operation, e) {
            e if e.kind() == ErrorKind::NotFound => Ok(None),
            e => Err(e),
        },
    }
}

/// `Ok` for "not found": deleting a missing thing succeeds.
pub(crate) fn gone_is_ok(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Runs a delete until the resource is gone, retrying while it is still used by something
/// going away (an instance being deleted).
pub(crate) async fn delete_while_in_use<F, Fut>(
    operation: &'static str,
    what: &str,
    attempt: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let busy = |e: &Error| has_reason(e, "resourceInUseByAnotherResource");
    kubemark_core::provider::delete_until_gone(PROVIDER_NAME, operation, what, busy, attempt).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_error_bodies_give_message_and_reason() {
        let body = br#"{"error":{"code":400,"message":"The disk resource 'x' is already being used by 'y'","errors":[{"message":"m","domain":"global","reason":"resourceInUseByAnotherResource"}]}}"#;
        let (m, r) = parse_body(body);
        assert_eq!(
            m.as_deref(),
            Some("The disk resource 'x' is already being used by 'y'")
        );
        assert_eq!(r.as_deref(), Some("resourceInUseByAnotherResource"));
        let ar = br#"{"error":{"code":409,"message":"exists","status":"ALREADY_EXISTS"}}"#;
        assert_eq!(parse_body(ar).1.as_deref(), Some("ALREADY_EXISTS"));
        assert_eq!(parse_body(b"<html>").0, None);
        assert_eq!(kind_of_status(429), ErrorKind::Temporary);
        assert_eq!(kind_of_status(403), ErrorKind::PermissionDenied);
    }
}
