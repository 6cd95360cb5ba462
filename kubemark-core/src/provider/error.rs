//! The provider error: one type with a kind, so callers decide by meaning (retry, adopt, report)
//! and not by the backend's wording.

use std::fmt;

/// What went wrong, independent of the backend that reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The resource does not exist. `delete` never returns it: deleting a missing thing succeeds.
    NotFound,
    /// A resource with that name exists and is not ours; `ensure_*` never adopts foreign resources.
    AlreadyExists,
    /// The provider does not implement or does not declare this operation.
    Unsupported,
    /// The configuration given to the provider is wrong; retrying cannot help.
    InvalidConfig,
    /// The credentials were accepted but lack a permission (or were rejected).
    PermissionDenied,
    /// A transient failure (throttling, timeouts, 5xx); the same call may succeed later.
    Temporary,
    /// Anything else.
    Unexpected,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not found",
            Self::AlreadyExists => "already exists",
            Self::Unsupported => "unsupported",
            Self::InvalidConfig => "invalid config",
            Self::PermissionDenied => "permission denied",
            Self::Temporary => "temporary failure",
            Self::Unexpected => "unexpected error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from a [`Provider`](super::Provider) operation.
///
/// Displayed on one line: `<provider> <operation>: <kind>: <message> (key=value, ...)`, so the CLI
/// can print it as is. Context values must never hold secrets.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    provider: String,
    operation: &'static str,
    message: String,
    context: Vec<(&'static str, String)>,
    #[source]
    source: Option<Source>,
}

impl Error {
    /// A new error of `kind` from `operation` of `provider`.
    pub fn new(
        kind: ErrorKind,
        provider: impl Into<String>,
        operation: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            provider: provider.into(),
            operation,
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    /// The standard "not implemented" error, so that no provider fakes a success.
    pub fn unsupported(provider: impl Into<String>, operation: &'static str) -> Self {
        let provider = provider.into();
        let message = format!("the {provider} provider does not support {operation} (yet)");
        Self::new(ErrorKind::Unsupported, provider, operation, message)
    }

    /// Adds a `key=value` pair shown after the message.
    pub fn with_context(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.context.push((key, value.into()));
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying the same call may succeed.
    pub fn is_temporary(&self) -> bool {
        self.kind == ErrorKind::Temporary
    }

    /// The provider that reported the error.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The operation that failed, e.g. `ensure_master`.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The context pairs attached to the error.
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}: {}",
            self.provider, self.operation, self.kind, self.message
        )?;
        if !self.context.is_empty() {
            f.write_str(" (")?;
            for (i, (k, v)) in self.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}={v}")?;
            }
            f.write_str(")")?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

/// The result of provider operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_context_and_source() {
        let err = Error::new(
            ErrorKind::PermissionDenied,
            "aws",
            "ensure_master",
            "not allowed",
        )
        .with_context("region", "us-east-1")
        .with_source(std::io::Error::other("403 from EC2"));
        let text = err.to_string();
        assert_eq!(
            text,
            "aws ensure_master: permission denied: not allowed (region=us-east-1): 403 from EC2"
        );
        assert!(!text.contains('\n'));
        assert!(!err.is_temporary());
    }

    #[test]
    fn unsupported_names_provider_and_operation() {
        let err = Error::unsupported("gce", "ensure_registry");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(
            err.to_string()
                .contains("gce provider does not support ensure_registry")
        );
    }
}
