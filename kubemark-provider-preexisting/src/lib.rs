#![doc = include_str!("../README.md")]

mod builder;
mod config;
mod entry;

pub use builder::{PreexistingProviderBuilder, parse_master};
pub use config::PreexistingConfig;
pub use entry::PreexistingEntry;

use kubemark_core::provider::{
    Capabilities, ClusterName, Provider, Registry, ResourceRef, Result, SshTarget,
};

/// The name the CLI knows this provider by.
pub const PROVIDER_NAME: &str = "pre-existing";

/// Machines the user already has. It creates no cloud resource, so it declares no capability:
/// the master host and registry come from configuration, and teardown never deletes them.
#[derive(Debug, Clone)]
pub struct PreexistingProvider {
    config: PreexistingConfig,
    master: Option<SshTarget>,
}

impl PreexistingProvider {
    /// The configuration.
    pub fn config(&self) -> &PreexistingConfig {
        &self.config
    }

    /// The master host to bootstrap over SSH, when one was given.
    pub fn master(&self) -> Option<&SshTarget> {
        self.master.as_ref()
    }

    /// The registry the user named.
    pub fn registry(&self) -> Option<Registry> {
        self.config.registry.clone().map(|repository| Registry {
            repository,
            credentials: None,
        })
    }
}

#[async_trait::async_trait]
impl Provider for PreexistingProvider {
    fn name(&self) -> &str {
        PROVIDER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    async fn list_owned(&self, _: &ClusterName) -> Result<Vec<ResourceRef>> {
        // It never creates provider resources, so none can be owned.
        Ok(Vec::new())
    }

    async fn delete(&self, _: &ResourceRef) -> Result<()> {
        // Nothing it could be asked to delete is its own; deleting a missing thing succeeds.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kubemark_core::provider::conformance::Conformance;

    use super::*;

    #[tokio::test]
    async fn passes_conformance_for_what_it_declares() {
        let provider = PreexistingProviderBuilder::new().build().unwrap();
        Conformance::new(Arc::new(provider)).run().await;
        let settings = kubemark_core::registry::ProviderSettings::new()
            .with("registry", "registry.example:5000/kubemark");
        let built = kubemark_core::registry::conformance::check_entry(&PreexistingEntry, &settings);
        Conformance::new(built).run().await;
    }
}
