//! Building a [`PreexistingProvider`].

use kubemark_core::provider::{Error, ErrorKind, Result, SshTarget};

use crate::{PROVIDER_NAME, PreexistingConfig, PreexistingProvider};

/// Builds a [`PreexistingProvider`].
#[derive(Debug, Clone, Default)]
pub struct PreexistingProviderBuilder {
    config: PreexistingConfig,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidConfig, PROVIDER_NAME, "build", message)
}

/// Parses `address[:port]` (IPv6 in brackets) into an SSH target for `user`; port 22 by default.
pub fn parse_master(value: &str, user: &str) -> Result<SshTarget> {
    let bad = || {
        invalid("master must be address[:port], e.g. 10.0.0.5 or 10.0.0.5:2222")
            .with_context("master", value)
    };
    let (host, port) = kubemark_core::registry::parse_host_port(value).ok_or_else(bad)?;
    Ok(SshTarget {
        host,
        port,
        user: user.to_string(),
    })
}

impl PreexistingProviderBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `MASTER_IP`, `KUBEMARK_SSH_USER`, `KUBEMARK_SSH_KEY`, `KUBEMARK_MASTER_KUBECONFIG`,
    /// `KUBEMARK_EXTERNAL_KUBECONFIG` and `KUBEMARK_IMAGE_REGISTRY`.
    pub fn from_env() -> Self {
        Self {
            config: PreexistingConfig {
                master: env("MASTER_IP"),
                ssh_user: env("KUBEMARK_SSH_USER"),
                ssh_key: env("KUBEMARK_SSH_KEY").map(Into::into),
                master_kubeconfig: env("KUBEMARK_MASTER_KUBECONFIG").map(Into::into),
                external_kubeconfig: env("KUBEMARK_EXTERNAL_KUBECONFIG").map(Into::into),
                registry: env("KUBEMARK_IMAGE_REGISTRY"),
            },
        }
    }

    /// The configuration so far.
    pub fn config(&self) -> &PreexistingConfig {
        &self.config
    }

    /// Replaces the whole configuration.
    pub fn with_config(mut self, config: PreexistingConfig) -> Self {
        self.config = config;
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<PreexistingProvider> {
        let c = &self.config;
        let master = match (&c.master, &c.master_kubeconfig) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "give either a master host (MASTER_IP) or a master kubeconfig, not both",
                ));
            }
            (Some(m), None) => Some(parse_master(m, c.ssh_user.as_deref().unwrap_or("root"))?),
            _ => None,
        };
        for path in [&c.ssh_key, &c.master_kubeconfig, &c.external_kubeconfig]
            .into_iter()
            .flatten()
        {
            if !path.is_file() {
                return Err(
                    invalid("file does not exist").with_context("path", path.display().to_string())
                );
            }
        }
        Ok(PreexistingProvider {
            config: self.config,
            master,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_addresses_parse_with_and_without_ports() {
        let t = parse_master("10.0.0.5", "root").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("10.0.0.5", 22));
        let t = parse_master("127.0.0.1:2222", "me").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("127.0.0.1", 2222, "me")
        );
        let t = parse_master("[::1]:2200", "root").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 2200));
        for bad in ["", "host:0", "host:x", "a b:22", "[::1"] {
            assert!(parse_master(bad, "root").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn conflicting_or_missing_inputs_are_clear_errors() {
        let mut config = PreexistingConfig {
            master: Some("10.0.0.5".into()),
            master_kubeconfig: Some("/nonexistent".into()),
            ..PreexistingConfig::default()
        };
        let err = PreexistingProviderBuilder::new()
            .with_config(config.clone())
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        config.master = None;
        let err = PreexistingProviderBuilder::new()
            .with_config(config)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("path=/nonexistent"), "{err}");
    }
}
