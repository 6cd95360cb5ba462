//! The `local` provider: the master runs as processes on this machine, so there is nothing to
//! create in any cloud. It declares no capability; everything `local` makes (processes, a work
//! directory) is owned and removed by [`crate::cluster`] and [`crate::master::LocalControlPlane`].

use super::{Capabilities, ClusterName, Provider, ResourceRef, Result};

/// The provider name.
pub const LOCAL: &str = "local";

/// The `local` provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalProvider;

#[async_trait::async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        LOCAL
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    async fn list_owned(&self, _: &ClusterName) -> Result<Vec<ResourceRef>> {
        Ok(Vec::new())
    }

    async fn delete(&self, _: &ResourceRef) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::provider::conformance::Conformance;

    #[tokio::test]
    async fn passes_conformance_for_what_it_declares() {
        let entry = crate::registry::LocalEntry;
        let provider = crate::registry::conformance::check_entry(&entry, &Default::default());
        Conformance::new(provider).run().await;
    }
}
