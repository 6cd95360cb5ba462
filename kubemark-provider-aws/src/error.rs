//! EC2 errors as provider errors: one kind per cause, one line, the AWS error code kept as context.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use kubemark_core::provider::{Error, ErrorKind};

use crate::PROVIDER_NAME;

/// Whether an EC2 error code means "it is not there".
pub(crate) fn is_not_found(code: &str) -> bool {
    code.ends_with(".NotFound")
        || code == "RepositoryNotFoundException"
        || code.ends_with(".Malformed") && code.starts_with("InvalidAllocationID")
}

/// Maps an SDK error of `operation` to a provider error.
pub(crate) fn map<E, R>(operation: &'static str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().unwrap_or_default().to_string();
    let message = e.message().unwrap_or_default().to_string();
    let kind = match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            ErrorKind::Temporary
        }
        _ => match code.as_str() {
            c if is_not_found(c) => ErrorKind::NotFound,
            // A name taken by a resource that is not this cluster's (contract rule 4).
            "InvalidGroup.Duplicate"
            | "InvalidKeyPair.Duplicate"
            | "RepositoryAlreadyExistsException" => ErrorKind::AlreadyExists,
            "AuthFailure"
            | "UnauthorizedOperation"
            | "OptInRequired"
            | "Blocked"
            | "InvalidClientTokenId"
            | "AccessDeniedException"
            | "SignatureDoesNotMatch" => ErrorKind::PermissionDenied,
            "RequestLimitExceeded"
            | "Throttling"
            | "ThrottlingException"
            | "ServiceUnavailable"
            | "InternalError"
            | "Unavailable"
            | "InsufficientInstanceCapacity" => ErrorKind::Temporary,
            "InvalidParameterValue"
            | "InvalidParameterCombination"
            | "InvalidAMIID.Malformed"
            | "InvalidKeyPair.Format"
            | "MissingParameter"
            | "VpcLimitExceeded"
            | "AddressLimitExceeded"
            | "InstanceLimitExceeded"
            | "VolumeLimitExceeded"
            | "LimitExceededException" => ErrorKind::InvalidConfig,
            _ => ErrorKind::Unexpected,
        },
    };
    let text = if message.is_empty() {
        // No service message (a transport failure): the SDK's own one-line chain.
        aws_sdk_ec2::error::DisplayErrorContext(&e)
            .to_string()
            .replace('\n', " ")
    } else {
        message
    };
    let mut err = Error::new(kind, PROVIDER_NAME, operation, text);
    if !code.is_empty() {
        err = err.with_context("code", code);
    }
    err
}

/// An error of our own making (a missing field in an answer, a timeout of ours).
pub(crate) fn unexpected(operation: &'static str, message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unexpected, PROVIDER_NAME, operation, message)
}

/// Runs a delete until the resource is gone, retrying while EC2 answers `busy_code` (a
/// dependency that is still going away).
pub(crate) async fn delete_while_busy<F, Fut>(
    operation: &'static str,
    busy_code: &str,
    what: &str,
    attempt: F,
) -> kubemark_core::provider::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kubemark_core::provider::Result<()>>,
{
    let busy = |e: &Error| {
        e.context()
            .iter()
            .any(|(k, v)| *k == "code" && v == busy_code)
    };
    kubemark_core::provider::delete_until_gone(PROVIDER_NAME, operation, what, busy, attempt).await
}
