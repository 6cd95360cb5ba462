#![doc = include_str!("../README.md")]

mod builder;
mod config;

pub use builder::GceProviderBuilder;
pub use config::GceConfig;

use kubemark_core::provider::{
    Capabilities, ClusterName, Disk, DiskSpec, Error, FirewallRule, FirewallSpec, MasterSpec,
    MasterVm, Provider, Registry, ResourceRef, Result, StaticIp,
};

/// The name the CLI knows this provider by.
pub const PROVIDER_NAME: &str = "gce";

/// The gce provider. Not implemented yet: every operation fails with `Unsupported`, and it
/// declares no capability, so nothing ever reports a fake success.
#[derive(Debug, Clone)]
pub struct GceProvider {
    config: GceConfig,
}

impl GceProvider {
    /// The configuration this provider was built with.
    pub fn config(&self) -> &GceConfig {
        &self.config
    }
}

#[async_trait::async_trait]
impl Provider for GceProvider {
    fn name(&self) -> &str {
        PROVIDER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    async fn ensure_static_ip(&self, _: &ClusterName) -> Result<StaticIp> {
        Err(Error::unsupported(PROVIDER_NAME, "ensure_static_ip"))
    }

    async fn ensure_disk(&self, _: &ClusterName, _: &DiskSpec) -> Result<Disk> {
        Err(Error::unsupported(PROVIDER_NAME, "ensure_disk"))
    }

    async fn ensure_firewall(&self, _: &ClusterName, _: &FirewallSpec) -> Result<FirewallRule> {
        Err(Error::unsupported(PROVIDER_NAME, "ensure_firewall"))
    }

    async fn ensure_master(&self, _: &ClusterName, _: &MasterSpec) -> Result<MasterVm> {
        Err(Error::unsupported(PROVIDER_NAME, "ensure_master"))
    }

    async fn ensure_registry(&self, _: &ClusterName) -> Result<Registry> {
        Err(Error::unsupported(PROVIDER_NAME, "ensure_registry"))
    }

    async fn list_owned(&self, _: &ClusterName) -> Result<Vec<ResourceRef>> {
        // Not "nothing": without a real lookup we cannot know what a cloud account holds.
        Err(Error::unsupported(PROVIDER_NAME, "list_owned"))
    }

    async fn delete(&self, _: &ResourceRef) -> Result<()> {
        Err(Error::unsupported(PROVIDER_NAME, "delete"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kubemark_core::provider::conformance::Conformance;

    use super::*;

    #[tokio::test]
    async fn passes_conformance_for_what_it_declares() {
        let provider = GceProviderBuilder::new().build().unwrap();
        Conformance::new(Arc::new(provider)).run().await;
    }
}
