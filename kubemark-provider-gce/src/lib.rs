#![doc = include_str!("../README.md")]

mod address;
mod builder;
mod client;
mod config;
mod disk;
mod entry;
mod error;
mod firewall;
mod instance;
mod registry;
mod tags;

pub use builder::GceProviderBuilder;
pub use config::GceConfig;
pub use entry::GceEntry;

use kubemark_core::provider::{
    Capabilities, ClusterName, Disk, DiskSpec, FirewallRule, FirewallSpec, MasterSpec, MasterVm,
    Provider, Registry, ResourceRef, Result, Role, StaticIp,
};
use tokio::sync::OnceCell;

use crate::client::Clients;

/// The name the CLI knows this provider by.
pub const PROVIDER_NAME: &str = "gce";

/// The gce provider: the master on Compute Engine (instance, persistent disks, a regional static
/// address, firewall rules for the master's network tag) and an Artifact Registry repository
/// for the hollow-node image, all labelled with the cluster and role (firewall rules, which have
/// no labels, by name prefix and description marker) and found again by those.
#[derive(Debug)]
pub struct GceProvider {
    config: GceConfig,
    project: String,
    zone: String,
    credentials: Option<google_cloud_auth::credentials::AccessTokenCredentials>,
    poll: std::time::Duration,
    clients: OnceCell<Clients>,
}

impl GceProvider {
    /// The configuration this provider was built with.
    pub fn config(&self) -> &GceConfig {
        &self.config
    }

    async fn clients(&self) -> Result<&Clients> {
        self.clients
            .get_or_try_init(|| Clients::new(&self.config, self.credentials.clone(), self.poll))
            .await
    }

    fn region(&self) -> &str {
        self.zone
            .rsplit_once('-')
            .map(|(r, _)| r)
            .unwrap_or(&self.zone)
    }

    fn ssh_ranges(&self, spec: &FirewallSpec) -> Vec<String> {
        let mut ranges = spec.ssh_source_ranges.clone();
        ranges.extend(self.config.ssh_cidr.iter().cloned());
        ranges
    }
}

#[async_trait::async_trait]
impl Provider for GceProvider {
    fn name(&self) -> &str {
        PROVIDER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    async fn ensure_static_ip(&self, cluster: &ClusterName) -> Result<StaticIp> {
        let c = self.clients().await?;
        address::ensure(c, &self.project, self.region(), cluster).await
    }

    async fn ensure_disk(&self, cluster: &ClusterName, spec: &DiskSpec) -> Result<Disk> {
        let c = self.clients().await?;
        disk::ensure(c, &self.project, &self.zone, cluster, spec).await
    }

    async fn ensure_firewall(
        &self,
        cluster: &ClusterName,
        spec: &FirewallSpec,
    ) -> Result<FirewallRule> {
        let c = self.clients().await?;
        let network = self.config.network.as_deref().unwrap_or("default");
        firewall::ensure(
            c,
            &self.project,
            network,
            cluster,
            spec,
            &self.ssh_ranges(spec),
        )
        .await
    }

    async fn ensure_master(&self, cluster: &ClusterName, spec: &MasterSpec) -> Result<MasterVm> {
        let c = self.clients().await?;
        instance::ensure(c, &self.project, &self.zone, &self.config, cluster, spec).await
    }

    async fn ensure_registry(&self, cluster: &ClusterName) -> Result<Registry> {
        let c = self.clients().await?;
        registry::ensure(c, &self.config, &self.project, self.region(), cluster).await
    }

    async fn list_owned(&self, cluster: &ClusterName) -> Result<Vec<ResourceRef>> {
        let c = self.clients().await?;
        let mut all = instance::list(c, &self.project, &self.zone, cluster).await?;
        all.extend(firewall::list(c, &self.project, cluster).await?);
        all.extend(address::list(c, &self.project, self.region(), cluster).await?);
        all.extend(disk::list(c, &self.project, &self.zone, cluster).await?);
        all.extend(registry::list(c, &self.config, &self.project, self.region(), cluster).await?);
        // Only this cluster's: the filters already say so; the owner check guards the rest.
        all.retain(|r| &r.cluster == cluster);
        Ok(all)
    }

    async fn delete(&self, resource: &ResourceRef) -> Result<()> {
        let c = self.clients().await?;
        let p = &self.project;
        match resource.role {
            Role::Master => instance::delete(c, p, &self.zone, resource).await,
            Role::Firewall => firewall::delete(c, p, resource).await,
            Role::StaticIp => address::delete(c, p, self.region(), resource).await,
            Role::MasterDisk | Role::EtcdEventsDisk => {
                disk::delete(c, p, &self.zone, resource).await
            }
            Role::Registry => registry::delete(c, &self.config, p, self.region(), resource).await,
            // Never made by this provider (it uses NETWORK); deleting a missing thing succeeds.
            Role::Network => Ok(()),
        }
    }
}
