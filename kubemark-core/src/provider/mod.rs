//! The provider contract: what a backend (GCE, AWS, a pre-existing host, memory) must do to host a
//! kubemark master. The rules are in `docs/provider-contract.md`; the `conformance` suite (feature
//! `conformance`) checks them.
//!
//! Implementors see only [`Provider`], a small object-safe trait (`Arc<dyn Provider>`); callers use
//! the conveniences of [`ProviderExt`], which every provider gets for free.

mod capabilities;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod error;
mod local;
mod memory;
mod ownership;
mod settings;
mod types;

use std::sync::Arc;

pub use capabilities::Capabilities;
pub use error::{Error, ErrorKind, Result};
pub use local::{LOCAL, LocalProvider};
pub use memory::MemoryProvider;
pub use ownership::{
    CLUSTER_TAG, ClusterName, InvalidClusterName, MANAGED_BY_TAG, MANAGED_BY_VALUE, ROLE_TAG, Role,
    check_owner, delete_until_gone, owner_of, ownership_tags,
};
pub use settings::{ProviderSettings, SettingSpec};
pub use types::{
    Disk, DiskSpec, FirewallRule, FirewallSpec, Infrastructure, InfrastructureSpec, MasterSpec,
    MasterVm, Registry, RegistryCredentials, ResourceRef, SshTarget, StaticIp, TeardownOptions,
    TeardownReport,
};

/// A shared, dynamically typed provider, as the CLI and the cluster plan hold it.
pub type DynProvider = Arc<dyn Provider>;

/// What a backend implements to host a kubemark master.
///
/// Rules (see `docs/provider-contract.md`):
/// - every `ensure_*` is get-or-create: called twice, it creates once and returns the same thing;
///   it adopts only resources tagged as this cluster's, and fails with
///   [`ErrorKind::AlreadyExists`] when the name is taken by something that is not;
/// - everything created carries [`ownership_tags`], so [`Provider::list_owned`] finds it without
///   local state;
/// - [`Provider::delete`] of a missing resource succeeds;
/// - an operation outside the declared [`Capabilities`] fails with [`ErrorKind::Unsupported`]:
///   that is what the `ensure_*` defaults do, so a provider implements only the ones it
///   declares (plus `list_owned` and `delete`, which every provider must answer).
#[async_trait::async_trait]
pub trait Provider: std::fmt::Debug + Send + Sync {
    /// The provider's name as the CLI knows it (`gce`, `aws`, `pre-existing`, ...).
    fn name(&self) -> &str;

    /// The operations this provider implements.
    fn capabilities(&self) -> Capabilities;

    /// Gets or creates the master's static IP address.
    async fn ensure_static_ip(&self, cluster: &ClusterName) -> Result<StaticIp> {
        let _ = cluster;
        Err(Error::unsupported(self.name(), "ensure_static_ip"))
    }

    /// Gets or creates a master disk (`spec.role` is [`Role::MasterDisk`] or
    /// [`Role::EtcdEventsDisk`]).
    async fn ensure_disk(&self, cluster: &ClusterName, spec: &DiskSpec) -> Result<Disk> {
        let _ = (cluster, spec);
        Err(Error::unsupported(self.name(), "ensure_disk"))
    }

    /// Gets or creates the firewall rule that opens the secure port to the master.
    async fn ensure_firewall(
        &self,
        cluster: &ClusterName,
        spec: &FirewallSpec,
    ) -> Result<FirewallRule> {
        let _ = (cluster, spec);
        Err(Error::unsupported(self.name(), "ensure_firewall"))
    }

    /// Gets or creates the master VM (with the disks and the static IP of `spec` attached).
    async fn ensure_master(&self, cluster: &ClusterName, spec: &MasterSpec) -> Result<MasterVm> {
        let _ = (cluster, spec);
        Err(Error::unsupported(self.name(), "ensure_master"))
    }

    /// Gets or creates the repository for the hollow-node image, with push credentials.
    async fn ensure_registry(&self, cluster: &ClusterName) -> Result<Registry> {
        let _ = cluster;
        Err(Error::unsupported(self.name(), "ensure_registry"))
    }

    /// Everything this provider finds tagged as owned by `cluster`, found by tag, not local state.
    async fn list_owned(&self, cluster: &ClusterName) -> Result<Vec<ResourceRef>>;

    /// Deletes one owned resource; a resource that is already gone is a success.
    async fn delete(&self, resource: &ResourceRef) -> Result<()>;
}

/// Conveniences over [`Provider`]; implemented for every provider, never by one.
#[async_trait::async_trait]
pub trait ProviderExt: Provider {
    /// Ensures every piece of infrastructure the provider declares, in dependency order.
    async fn ensure_infrastructure(
        &self,
        cluster: &ClusterName,
        spec: &InfrastructureSpec,
    ) -> Result<Infrastructure> {
        let caps = self.capabilities();
        let mut infra = Infrastructure::default();
        if caps.static_ip {
            infra.static_ip = Some(self.ensure_static_ip(cluster).await?);
        }
        if caps.disks {
            infra
                .disks
                .push(self.ensure_disk(cluster, &spec.master_disk).await?);
            if let Some(events) = &spec.etcd_events_disk {
                infra.disks.push(self.ensure_disk(cluster, events).await?);
            }
        }
        if caps.firewall {
            infra.firewall = Some(self.ensure_firewall(cluster, &spec.firewall).await?);
        }
        if caps.master_vm {
            let mut master = spec.master.clone();
            master.static_ip = infra.static_ip.clone();
            master.disks = infra.disks.clone();
            infra.master = Some(self.ensure_master(cluster, &master).await?);
        }
        if caps.registry {
            infra.registry = Some(self.ensure_registry(cluster).await?);
        }
        Ok(infra)
    }

    /// Deletes everything tagged as `cluster`'s, in [`Role::TEARDOWN_ORDER`].
    ///
    /// Safe to re-run after a failure: it rediscovers what is left by tag.
    async fn teardown(
        &self,
        cluster: &ClusterName,
        options: TeardownOptions,
    ) -> Result<TeardownReport> {
        let mut owned = self.list_owned(cluster).await?;
        owned.sort_by_key(|r| Role::TEARDOWN_ORDER.iter().position(|o| *o == r.role));
        let mut report = TeardownReport::default();
        for resource in owned {
            if !options.dry_run {
                tracing::info!(provider = self.name(), role = %resource.role, name = %resource.name, "deleting");
                self.delete(&resource).await?;
            }
            report.resources.push(resource);
        }
        report.dry_run = options.dry_run;
        Ok(report)
    }
}

impl<P: Provider + ?Sized> ProviderExt for P {}
