//! An in-memory provider: the reference implementation of the contract, used by the conformance
//! suite's own tests and by anyone testing code that drives a provider.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use super::{
    Capabilities, ClusterName, Disk, DiskSpec, Error, ErrorKind, FirewallRule, FirewallSpec,
    MasterSpec, MasterVm, Provider, Registry, ResourceRef, Result, Role, SshTarget, StaticIp,
    owner_of, ownership_tags,
};

const NAME: &str = "memory";

#[derive(Debug, Clone)]
struct Resource {
    id: String,
    role: Role,
    tags: BTreeMap<String, String>,
    address: Option<IpAddr>,
    size_gb: u32,
    port: u16,
}

#[derive(Debug, Default)]
struct State {
    by_name: BTreeMap<String, Resource>,
    next_id: u64,
}

/// A provider whose "cloud" is a map in memory. It keeps every rule of the contract, including
/// tag-based discovery, so it is also the model other providers are compared with.
#[derive(Debug, Default)]
pub struct MemoryProvider {
    capabilities: Capabilities,
    state: Mutex<State>,
}

impl MemoryProvider {
    /// A provider with every capability.
    pub fn new() -> Self {
        Self::with_capabilities(Capabilities::ALL)
    }

    /// A provider that declares (and implements) only `capabilities`.
    pub fn with_capabilities(capabilities: Capabilities) -> Self {
        Self {
            capabilities,
            state: Mutex::default(),
        }
    }

    /// Puts an untagged resource named `name` into the "cloud", as a user's own resource would be.
    pub fn insert_foreign(&self, role: Role, name: &str) {
        let mut state = self.lock();
        state.next_id += 1;
        let id = format!("foreign-{}", state.next_id);
        state.by_name.insert(
            name.to_string(),
            Resource {
                id,
                role,
                tags: BTreeMap::new(),
                address: None,
                size_gb: 0,
                port: 0,
            },
        );
    }

    /// The names of every resource, ours or not.
    pub fn resource_names(&self) -> Vec<String> {
        self.lock().by_name.keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-updated (single inserts), so
        // the poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn require(&self, on: bool, operation: &'static str) -> Result<()> {
        if on {
            Ok(())
        } else {
            Err(Error::unsupported(NAME, operation))
        }
    }

    /// Get-or-create by name; adopts only a resource tagged as this cluster's in this role.
    fn ensure(
        &self,
        operation: &'static str,
        cluster: &ClusterName,
        role: Role,
        make: impl FnOnce(u64) -> Resource,
    ) -> Result<(String, Resource)> {
        let name = format!("{cluster}-{role}");
        let mut state = self.lock();
        if let Some(existing) = state.by_name.get(&name) {
            return match owner_of(&existing.tags) {
                Some((c, r)) if &c == cluster && r == role => Ok((name, existing.clone())),
                _ => Err(Error::new(
                    ErrorKind::AlreadyExists,
                    NAME,
                    operation,
                    "a resource with this name exists and is not owned by this cluster",
                )
                .with_context("name", name)),
            };
        }
        state.next_id += 1;
        let mut resource = make(state.next_id);
        resource.tags = ownership_tags(cluster, role);
        state.by_name.insert(name.clone(), resource.clone());
        Ok((name, resource))
    }
}

fn resource(id: u64, role: Role) -> Resource {
    Resource {
        id: format!("mem-{id}"),
        role,
        tags: BTreeMap::new(),
        address: None,
        size_gb: 0,
        port: 0,
    }
}

#[async_trait::async_trait]
impl Provider for MemoryProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn ensure_static_ip(&self, cluster: &ClusterName) -> Result<StaticIp> {
        self.require(self.capabilities.static_ip, "ensure_static_ip")?;
        let (name, r) =
            self.ensure("ensure_static_ip", cluster, Role::StaticIp, |id| Resource {
                // Addresses come from 127.0.0.0/8 so anything that dials them stays on this machine.
                address: Some(IpAddr::V4(Ipv4Addr::new(127, 0, (id >> 8) as u8, id as u8))),
                ..resource(id, Role::StaticIp)
            })?;
        Ok(StaticIp {
            name,
            address: r.address.expect("static IPs always get an address"),
        })
    }

    async fn ensure_disk(&self, cluster: &ClusterName, spec: &DiskSpec) -> Result<Disk> {
        self.require(self.capabilities.disks, "ensure_disk")?;
        if !matches!(spec.role, Role::MasterDisk | Role::EtcdEventsDisk) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                NAME,
                "ensure_disk",
                "not a disk role",
            )
            .with_context("role", spec.role.as_str()));
        }
        let (name, r) = self.ensure("ensure_disk", cluster, spec.role, |id| Resource {
            size_gb: spec.size_gb,
            ..resource(id, spec.role)
        })?;
        Ok(Disk {
            role: spec.role,
            name,
            id: r.id,
            size_gb: r.size_gb,
        })
    }

    async fn ensure_firewall(
        &self,
        cluster: &ClusterName,
        spec: &FirewallSpec,
    ) -> Result<FirewallRule> {
        self.require(self.capabilities.firewall, "ensure_firewall")?;
        let (name, r) = self.ensure("ensure_firewall", cluster, Role::Firewall, |id| Resource {
            port: spec.port,
            ..resource(id, Role::Firewall)
        })?;
        Ok(FirewallRule { name, port: r.port })
    }

    async fn ensure_master(&self, cluster: &ClusterName, spec: &MasterSpec) -> Result<MasterVm> {
        self.require(self.capabilities.master_vm, "ensure_master")?;
        let public = spec.static_ip.as_ref().map(|ip| ip.address);
        let (name, r) = self.ensure("ensure_master", cluster, Role::Master, |id| Resource {
            address: public.or(Some(IpAddr::V4(Ipv4Addr::LOCALHOST))),
            ..resource(id, Role::Master)
        })?;
        let ip = r.address;
        Ok(MasterVm {
            name,
            id: r.id,
            public_ip: ip,
            private_ip: ip,
            ssh: ip.map(|ip| SshTarget {
                host: ip.to_string(),
                port: 22,
                user: "kubemark".into(),
            }),
        })
    }

    async fn ensure_registry(&self, cluster: &ClusterName) -> Result<Registry> {
        self.require(self.capabilities.registry, "ensure_registry")?;
        let (name, _) = self.ensure("ensure_registry", cluster, Role::Registry, |id| {
            resource(id, Role::Registry)
        })?;
        Ok(Registry {
            repository: format!("memory.invalid/{name}"),
            credentials: None,
        })
    }

    async fn list_owned(&self, cluster: &ClusterName) -> Result<Vec<ResourceRef>> {
        let state = self.lock();
        Ok(state
            .by_name
            .iter()
            .filter_map(|(name, r)| {
                let (owner, role) = owner_of(&r.tags)?;
                (&owner == cluster).then(|| ResourceRef {
                    cluster: owner,
                    role,
                    name: name.clone(),
                    id: r.id.clone(),
                })
            })
            .collect())
    }

    async fn delete(&self, resource: &ResourceRef) -> Result<()> {
        let mut state = self.lock();
        if let Some(existing) = state.by_name.get(&resource.name) {
            // Refuse to delete what the tags say is not this cluster's, even when asked by name.
            if owner_of(&existing.tags) != Some((resource.cluster.clone(), resource.role)) {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    NAME,
                    "delete",
                    "refusing to delete a resource not owned by this cluster",
                )
                .with_context("name", resource.name.clone()));
            }
            debug_assert_eq!(existing.role, resource.role);
            state.by_name.remove(&resource.name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::conformance::Conformance;

    #[tokio::test]
    async fn memory_provider_passes_conformance() {
        Conformance::new(std::sync::Arc::new(MemoryProvider::new()))
            .run()
            .await;
    }

    #[tokio::test]
    async fn memory_provider_with_partial_capabilities_passes_conformance() {
        let caps = Capabilities::NONE.with_master_vm(true).with_registry(true);
        Conformance::new(std::sync::Arc::new(MemoryProvider::with_capabilities(caps)))
            .run()
            .await;
    }

    #[tokio::test]
    async fn foreign_resources_block_adoption_and_survive_teardown() {
        use crate::provider::{ProviderExt, TeardownOptions};
        let p = MemoryProvider::new();
        let c = ClusterName::new("alpha").unwrap();
        p.insert_foreign(Role::StaticIp, "alpha-static-ip");
        let err = p.ensure_static_ip(&c).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        p.teardown(&c, TeardownOptions::default()).await.unwrap();
        assert_eq!(p.resource_names(), vec!["alpha-static-ip".to_string()]);
    }
}
