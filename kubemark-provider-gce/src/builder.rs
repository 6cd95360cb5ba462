//! Building a [`GceProvider`].

use kubemark_core::provider::{Error, ErrorKind, Result};

use crate::{GceConfig, GceProvider, PROVIDER_NAME};

/// Builds a [`GceProvider`] from the environment, explicit settings, or both.
#[derive(Debug, Clone, Default)]
pub struct GceProviderBuilder {
    config: GceConfig,
    credentials: Option<google_cloud_auth::credentials::AccessTokenCredentials>,
    poll: Option<std::time::Duration>,
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

impl GceProviderBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads upstream kubemark's variables: `PROJECT` / `CLOUDSDK_CORE_PROJECT` /
    /// `GOOGLE_CLOUD_PROJECT`, `ZONE` / `KUBEMARK_ZONE`, `KUBEMARK_MASTER_SIZE`, `NETWORK`; and
    /// `KUBEMARK_GCE_IMAGE`, `KUBEMARK_SSH_CIDR`, `KUBEMARK_SSH_USER`, `KUBEMARK_GCE_ENDPOINT`,
    /// `KUBEMARK_GCE_REGISTRY_ENDPOINT`, `KUBEMARK_GCE_REGISTRY_HOST`. Credentials are
    /// Application Default Credentials, resolved on first use.
    pub fn from_env() -> Self {
        Self {
            config: GceConfig {
                project: env(&["PROJECT", "CLOUDSDK_CORE_PROJECT", "GOOGLE_CLOUD_PROJECT"]),
                zone: env(&["KUBEMARK_ZONE", "ZONE"]),
                master_machine_type: env(&["KUBEMARK_MASTER_SIZE"]),
                network: env(&["NETWORK"]),
                image: env(&["KUBEMARK_GCE_IMAGE"]),
                ssh_cidr: env(&["KUBEMARK_SSH_CIDR"]),
                ssh_user: env(&["KUBEMARK_SSH_USER"]),
                endpoint: env(&["KUBEMARK_GCE_ENDPOINT"]),
                registry_endpoint: env(&["KUBEMARK_GCE_REGISTRY_ENDPOINT"]),
                registry_host: env(&["KUBEMARK_GCE_REGISTRY_HOST"]),
            },
            credentials: None,
            poll: None,
        }
    }

    /// Replaces the whole configuration.
    pub fn with_config(mut self, config: GceConfig) -> Self {
        self.config = config;
        self
    }

    /// Talks to `endpoint` instead of the real Compute API (emulators, tests).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.config.endpoint = Some(endpoint.into());
        self
    }

    /// Talks to `endpoint` instead of the real Artifact Registry API.
    pub fn with_registry_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.config.registry_endpoint = Some(endpoint.into());
        self
    }

    /// Uses these credentials instead of Application Default Credentials (tests, or a harness
    /// that manages its own).
    pub fn with_credentials(
        mut self,
        credentials: google_cloud_auth::credentials::AccessTokenCredentials,
    ) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Waits `interval` before the first poll of an operation (default 250 ms; the wait doubles
    /// up to 10 s). Emulators finish operations at once, so their tests poll sooner.
    pub fn with_polling_interval(mut self, interval: std::time::Duration) -> Self {
        self.poll = Some(interval);
        self
    }

    /// Sets the project.
    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.config.project = Some(project.into());
        self
    }

    /// Sets the zone.
    pub fn with_zone(mut self, zone: impl Into<String>) -> Self {
        self.config.zone = Some(zone.into());
        self
    }

    /// Validates and builds: a project and a zone are required.
    pub fn build(self) -> Result<GceProvider> {
        let invalid =
            |message: &str| Error::new(ErrorKind::InvalidConfig, PROVIDER_NAME, "build", message);
        let Some(project) = self.config.project.clone() else {
            return Err(invalid(
                "no GCP project: set PROJECT (or CLOUDSDK_CORE_PROJECT, GOOGLE_CLOUD_PROJECT)",
            ));
        };
        let Some(zone) = self.config.zone.clone() else {
            return Err(invalid(
                "no zone: set ZONE (or KUBEMARK_ZONE), e.g. us-central1-b",
            ));
        };
        if self.config.region().is_none()
            || !zone
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(invalid("zone must look like us-central1-b").with_context("zone", zone));
        }
        if let Some(cidr) = &self.config.ssh_cidr {
            let valid = cidr.split_once('/').is_some_and(|(ip, len)| {
                ip.parse::<std::net::IpAddr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 128)
            });
            if !valid {
                return Err(invalid("ssh CIDR must look like 203.0.113.4/32")
                    .with_context("ssh_cidr", cidr.clone()));
            }
        }
        Ok(GceProvider {
            config: self.config,
            project,
            zone,
            credentials: self.credentials,
            poll: self.poll.unwrap_or(std::time::Duration::from_millis(250)),
            clients: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_gives_region_and_bad_zones_are_rejected() {
        let p = GceProviderBuilder::new()
            .with_zone("us-central1-b")
            .with_project("p")
            .build()
            .unwrap();
        assert_eq!(p.config().region(), Some("us-central1"));
        let err = GceProviderBuilder::new()
            .with_project("p")
            .with_zone("Central")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("zone must look like"), "{err}");
        let err = GceProviderBuilder::new()
            .with_zone("us-central1-b")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("no GCP project"), "{err}");
    }
}
