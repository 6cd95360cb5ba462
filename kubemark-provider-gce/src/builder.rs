//! Building a [`GceProvider`].

use kubemark_core::provider::{Error, ErrorKind, Result};

use crate::{GceConfig, GceProvider, PROVIDER_NAME};

/// Builds a [`GceProvider`] from the environment, explicit settings, or both.
#[derive(Debug, Clone, Default)]
pub struct GceProviderBuilder {
    config: GceConfig,
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
    /// `GOOGLE_CLOUD_PROJECT`, `ZONE` / `KUBEMARK_ZONE`, `KUBEMARK_MASTER_SIZE`, `NETWORK`,
    /// and `KUBEMARK_GCE_ENDPOINT`.
    pub fn from_env() -> Self {
        Self {
            config: GceConfig {
                project: env(&["PROJECT", "CLOUDSDK_CORE_PROJECT", "GOOGLE_CLOUD_PROJECT"]),
                zone: env(&["KUBEMARK_ZONE", "ZONE"]),
                master_machine_type: env(&["KUBEMARK_MASTER_SIZE"]),
                network: env(&["NETWORK"]),
                endpoint: env(&["KUBEMARK_GCE_ENDPOINT"]),
            },
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

    /// Validates and builds.
    pub fn build(self) -> Result<GceProvider> {
        if let Some(zone) = &self.config.zone
            && (self.config.region().is_none()
                || !zone
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                PROVIDER_NAME,
                "build",
                "zone must look like us-central1-b",
            )
            .with_context("zone", zone.clone()));
        }
        Ok(GceProvider {
            config: self.config,
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
            .with_zone("Central")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("zone must look like"), "{err}");
    }
}
