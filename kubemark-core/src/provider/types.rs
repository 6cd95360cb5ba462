//! The values that flow through the provider contract.

use std::fmt;
use std::net::IpAddr;

use super::{ClusterName, Role};

/// A disk for the master.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskSpec {
    /// [`Role::MasterDisk`] or [`Role::EtcdEventsDisk`].
    pub role: Role,
    /// Size in GiB.
    pub size_gb: u32,
    /// Backend disk type (e.g. `pd-ssd`, `gp3`); `None` takes the provider's default.
    pub disk_type: Option<String>,
}

impl DiskSpec {
    /// The master data disk of `size_gb` GiB.
    pub fn master(size_gb: u32) -> Self {
        Self {
            role: Role::MasterDisk,
            size_gb,
            disk_type: None,
        }
    }

    /// The etcd-events disk of `size_gb` GiB.
    pub fn etcd_events(size_gb: u32) -> Self {
        Self {
            role: Role::EtcdEventsDisk,
            size_gb,
            disk_type: None,
        }
    }
}

/// A disk that exists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Disk {
    /// The role it was created for.
    pub role: Role,
    /// The backend's name for it.
    pub name: String,
    /// The backend's id for it.
    pub id: String,
    /// Size in GiB.
    pub size_gb: u32,
}

/// A reserved static address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StaticIp {
    /// The backend's name (or allocation id).
    pub name: String,
    /// The address.
    pub address: IpAddr,
}

/// The firewall rule opening the master's secure port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FirewallSpec {
    /// The API server's secure port (443 unless configured).
    pub port: u16,
    /// CIDRs allowed to reach the port.
    pub source_ranges: Vec<String>,
    /// CIDRs allowed to reach SSH (22); empty closes SSH.
    pub ssh_source_ranges: Vec<String>,
}

impl Default for FirewallSpec {
    fn default() -> Self {
        Self {
            port: 443,
            source_ranges: vec!["0.0.0.0/0".into()],
            ssh_source_ranges: Vec::new(),
        }
    }
}

/// A firewall rule that exists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FirewallRule {
    /// The backend's name for it.
    pub name: String,
    /// The opened port.
    pub port: u16,
}

/// The master VM to get or create.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MasterSpec {
    /// Machine type / instance type (`KUBEMARK_MASTER_SIZE`); `None` takes the provider's default.
    pub machine_type: Option<String>,
    /// Image / AMI; `None` takes the provider's default.
    pub image: Option<String>,
    /// The SSH public key (OpenSSH format) the master must accept.
    pub ssh_public_key: Option<String>,
    /// The login user for that key; `None` takes the provider's default (the image's user).
    pub ssh_user: Option<String>,
    /// The static IP to attach (filled by [`ProviderExt::ensure_infrastructure`](super::ProviderExt)).
    pub static_ip: Option<StaticIp>,
    /// The disks to attach (filled by [`ProviderExt::ensure_infrastructure`](super::ProviderExt)).
    pub disks: Vec<Disk>,
}

/// How to reach a host over SSH.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SshTarget {
    /// Address or host name.
    pub host: String,
    /// Port (22 unless told).
    pub port: u16,
    /// Login user.
    pub user: String,
}

/// A master VM that exists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MasterVm {
    /// The backend's name for it.
    pub name: String,
    /// The backend's id for it.
    pub id: String,
    /// The address clients use (the static IP when there is one).
    pub public_ip: Option<IpAddr>,
    /// The address inside the provider's network.
    pub private_ip: Option<IpAddr>,
    /// How to reach it for bootstrap.
    pub ssh: Option<SshTarget>,
}

impl MasterVm {
    /// A VM reached over SSH on port 22 as `ssh_user`, at its public address if it has one,
    /// else at its private one (a provider whose operator sits inside the network).
    pub fn new(
        name: impl Into<String>,
        id: impl Into<String>,
        public_ip: Option<IpAddr>,
        private_ip: Option<IpAddr>,
        ssh_user: &str,
    ) -> Self {
        MasterVm {
            name: name.into(),
            id: id.into(),
            public_ip,
            private_ip,
            ssh: public_ip.or(private_ip).map(|ip| SshTarget {
                host: ip.to_string(),
                port: 22,
                user: ssh_user.to_string(),
            }),
        }
    }
}

/// Credentials to push to a registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegistryCredentials {
    /// User name (`AWS`, `oauth2accesstoken`, ...).
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where the hollow-node image goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registry {
    /// `host[:port]/repository`, without a tag.
    pub repository: String,
    /// Credentials for pushing, when the registry needs them.
    pub credentials: Option<RegistryCredentials>,
}

/// A resource found by its ownership tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ResourceRef {
    /// The cluster that owns it.
    pub cluster: ClusterName,
    /// Its role.
    pub role: Role,
    /// The backend's name for it.
    pub name: String,
    /// The backend's id for it (equal to `name` where the backend has no separate id).
    pub id: String,
}

/// Everything [`ProviderExt::ensure_infrastructure`](super::ProviderExt) needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InfrastructureSpec {
    /// The master's data disk.
    pub master_disk: DiskSpec,
    /// A separate disk for etcd-events, when asked.
    pub etcd_events_disk: Option<DiskSpec>,
    /// The firewall rule.
    pub firewall: FirewallSpec,
    /// The master VM.
    pub master: MasterSpec,
}

impl Default for InfrastructureSpec {
    fn default() -> Self {
        Self {
            master_disk: DiskSpec::master(20),
            etcd_events_disk: None,
            firewall: FirewallSpec::default(),
            master: MasterSpec::default(),
        }
    }
}

/// What [`ProviderExt::ensure_infrastructure`](super::ProviderExt) produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Infrastructure {
    /// The static IP, when the provider makes one.
    pub static_ip: Option<StaticIp>,
    /// The disks, when the provider makes them.
    pub disks: Vec<Disk>,
    /// The firewall rule, when the provider makes one.
    pub firewall: Option<FirewallRule>,
    /// The master VM, when the provider makes (or adopts) one.
    pub master: Option<MasterVm>,
    /// The image registry, when the provider has one.
    pub registry: Option<Registry>,
}

/// Options of [`ProviderExt::teardown`](super::ProviderExt).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TeardownOptions {
    /// List what would be deleted, delete nothing.
    pub dry_run: bool,
}

/// What a teardown deleted (or, in a dry run, would delete), in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TeardownReport {
    /// The resources, in deletion order.
    pub resources: Vec<ResourceRef>,
    /// Whether nothing was actually deleted.
    pub dry_run: bool,
}
