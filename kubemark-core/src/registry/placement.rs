//! What a [`ProviderEntry`](super::ProviderEntry) gets to decide where a master goes, and the
//! placement shared by providers that create a VM and bootstrap it over SSH.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ProviderSettings;
use crate::binaries::BinarySet;
use crate::bootstrap::{HostKeyCheck, SshTarget};
use crate::cluster::MasterPlacement;
use crate::master::{LocalOptions, MasterPorts, RemoteMasterSpec};
use crate::provider::{ClusterName, FirewallSpec, InfrastructureSpec, MasterSpec};

/// The master settings every provider may read, whatever the front end resolved them from
/// (the CLI: flags, environment, the config file's `master` section, whose shape this is).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MasterSettings {
    /// `address[:port]` of an existing master host (pre-existing; upstream `MASTER_IP`).
    pub host: Option<String>,
    /// Admin kubeconfig of a master that already runs (pre-existing, instead of `host`).
    pub kubeconfig: Option<PathBuf>,
    /// SSH login (default root).
    pub ssh_user: Option<String>,
    /// SSH private key.
    pub ssh_key: Option<PathBuf>,
    /// known_hosts to check the host key against (default: the user's).
    pub known_hosts_file: Option<PathBuf>,
    /// `strict` (default) or `accept-new`.
    pub host_key_check: Option<HostKeyCheck>,
    /// ssh_config to use instead of the user's.
    pub ssh_config: Option<PathBuf>,
    /// Config dir on the master (default `/etc/srv/kubernetes`).
    pub config_dir: Option<PathBuf>,
    /// Data dir on the master (default `/var/lib/kubemark`).
    pub data_dir: Option<PathBuf>,
    /// Log dir on the master (default `/var/log/kubemark`).
    pub log_dir: Option<PathBuf>,
    /// Address the API server binds (default `0.0.0.0`).
    pub bind_address: Option<IpAddr>,
    /// Address clients use (default: the host's address).
    pub advertise_address: Option<IpAddr>,
    /// Ports.
    #[serde(default)]
    pub ports: MasterPortSettings,
    /// Machine type of a cloud master (upstream `KUBEMARK_MASTER_SIZE`).
    pub size: Option<String>,
    /// `host:port` to reach a cloud master's SSH instead of the VM's address (an emulator, NAT,
    /// a forwarded port).
    pub ssh_address: Option<String>,
}

/// The master's ports; `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MasterPortSettings {
    /// API server (default 6443).
    pub apiserver: Option<u16>,
    /// etcd clients (default 2379).
    pub etcd_client: Option<u16>,
    /// etcd peers (default 2380).
    pub etcd_peer: Option<u16>,
    /// controller-manager (default 10257).
    pub controller_manager: Option<u16>,
    /// scheduler (default 10259).
    pub scheduler: Option<u16>,
}

/// Extra flags for the control-plane components, by component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentArgs {
    /// kube-apiserver's.
    pub apiserver: Vec<String>,
    /// kube-controller-manager's.
    pub controller_manager: Vec<String>,
    /// kube-scheduler's.
    pub scheduler: Vec<String>,
}

impl ComponentArgs {
    /// Adds the flags to a local control plane's (they win over its defaults).
    pub fn apply(&self, options: &mut LocalOptions) {
        options
            .apiserver_args
            .extend(self.apiserver.iter().cloned());
        options
            .controller_manager_args
            .extend(self.controller_manager.iter().cloned());
        options
            .scheduler_args
            .extend(self.scheduler.iter().cloned());
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.apiserver.is_empty() && self.controller_manager.is_empty() && self.scheduler.is_empty()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the control-plane binaries come from. Asked only by placements that install or run
/// them, so a master that already runs needs none.
#[async_trait::async_trait]
pub trait BinarySource: Send + Sync {
    /// The binaries (located, or downloaded first).
    async fn binaries(&self) -> Result<BinarySet, BoxError>;
}

#[async_trait::async_trait]
impl BinarySource for BinarySet {
    async fn binaries(&self) -> Result<BinarySet, BoxError> {
        Ok(self.clone())
    }
}

/// What [`ProviderEntry::placement`](super::ProviderEntry::placement) decides from.
pub struct PlacementRequest<'a> {
    /// The cluster.
    pub cluster: &'a ClusterName,
    /// The cluster's private state directory (a local master works in `<dir>/master`).
    pub dir: &'a Path,
    /// The provider's settings, checked.
    pub settings: &'a ProviderSettings,
    /// The generic master settings.
    pub master: &'a MasterSettings,
    /// Extra component flags (only a local master takes them, for now).
    pub component_args: &'a ComponentArgs,
    /// How long each readiness step may take.
    pub timeout: Duration,
    /// Keep a local master's data, PKI and logs after stop.
    pub keep_data: bool,
    /// The control-plane binaries, asked for only when needed.
    pub binaries: &'a dyn BinarySource,
}

impl PlacementRequest<'_> {
    /// The binaries, or the error of finding them.
    pub async fn binaries(&self) -> Result<BinarySet, PlacementError> {
        self.binaries
            .binaries()
            .await
            .map_err(PlacementError::Binaries)
    }

    /// Fails when component flags were given: only a local master renders them here.
    pub fn refuse_component_args(&self) -> Result<(), PlacementError> {
        if self.component_args.is_empty() {
            Ok(())
        } else {
            Err(PlacementError::Invalid(
                "--master-arg is supported with --provider local only, for now (the other providers render the master's flags on the master)".into(),
            ))
        }
    }
}

/// Where the master goes and what the provider creates for it.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The master.
    pub master: MasterPlacement,
    /// The provider's infrastructure (for providers that declare capabilities).
    pub infrastructure: InfrastructureSpec,
}

impl Placement {
    /// A master that needs no infrastructure.
    pub fn without_infrastructure(master: MasterPlacement) -> Self {
        Self {
            master,
            infrastructure: InfrastructureSpec::default(),
        }
    }
}

/// Why a placement cannot be decided.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// The settings are missing something or contradict each other.
    #[error("{0}")]
    Invalid(String),
    /// The provider refused its settings.
    #[error(transparent)]
    Provider(#[from] crate::provider::Error),
    /// A file or lookup failed.
    #[error("{context}")]
    Io {
        /// What was being read or resolved.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The control-plane binaries are missing.
    #[error("{0}")]
    Binaries(BoxError),
}

/// A remote master's spec for `cluster` advertised at `advertise`, with the directories, bind
/// address and ports of `m` and `timeout` per readiness step.
pub fn remote_master_spec(
    cluster: &ClusterName,
    advertise: IpAddr,
    m: &MasterSettings,
    timeout: Duration,
) -> RemoteMasterSpec {
    let mut spec = RemoteMasterSpec::new(cluster.clone(), advertise);
    if let Some(d) = &m.config_dir {
        spec.config_dir = d.clone();
    }
    if let Some(d) = &m.data_dir {
        spec.data_dir = d.clone();
    }
    if let Some(d) = &m.log_dir {
        spec.log_dir = d.clone();
    }
    if let Some(b) = m.bind_address {
        spec.network.bind_address = b;
    }
    let p = &m.ports;
    let d = spec.network.ports;
    spec.network.ports = MasterPorts {
        apiserver: p.apiserver.unwrap_or(d.apiserver),
        etcd_client: p.etcd_client.unwrap_or(d.etcd_client),
        etcd_peer: p.etcd_peer.unwrap_or(d.etcd_peer),
        controller_manager: p.controller_manager.unwrap_or(d.controller_manager),
        scheduler: p.scheduler.unwrap_or(d.scheduler),
    };
    spec.ready_timeout = timeout;
    spec
}

/// Parses `address[:port]` (IPv6 in brackets); port 22 by default. `None` when malformed.
pub fn parse_host_port(value: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        (host.to_string(), tail.strip_prefix(':'))
    } else {
        match value.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
            _ => (value.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
        None => 22,
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    Some((host, port))
}

/// The first address of `host` (itself when it is one).
pub async fn resolve_host(host: &str) -> Result<IpAddr, PlacementError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    tokio::net::lookup_host((host, 0))
        .await
        .map_err(|source| PlacementError::Io {
            context: format!("resolving master host {host}"),
            source,
        })?
        .map(|a| a.ip())
        .next()
        .ok_or_else(|| PlacementError::Invalid(format!("master host {host} has no address")))
}

/// A master VM that provider `provider` creates, bootstrapped over SSH with the operator's key
/// (its `.pub` goes into the VM): the placement of the gce and aws providers, for any provider
/// that declares `master_vm`.
pub async fn provisioned_vm(
    provider: &str,
    request: &PlacementRequest<'_>,
) -> Result<Placement, PlacementError> {
    request.refuse_component_args()?;
    let m = request.master;
    let Some(key) = &m.ssh_key else {
        return Err(PlacementError::Invalid(format!(
            "--provider {provider} needs an SSH key for the master VM: --ssh-key, KUBEMARK_SSH_KEY or master.sshKey (its .pub is installed on the VM)"
        )));
    };
    let public = key.with_extension("pub");
    let public_key = std::fs::read_to_string(&public).map_err(|source| PlacementError::Io {
        context: format!(
            "the SSH public key {} (next to --ssh-key)",
            public.display()
        ),
        source,
    })?;
    let mut target = SshTarget::new(
        String::new(),
        // Empty: the provider's user for the VM (the image's login user).
        m.ssh_user.clone().unwrap_or_default(),
        key.clone(),
    );
    target.known_hosts_file = m.known_hosts_file.clone();
    target.config_file = m.ssh_config.clone();
    // A new VM's host key cannot be known in advance: trust it on first use unless told otherwise.
    target.host_key_check = m.host_key_check.unwrap_or(HostKeyCheck::AcceptNew);
    let connect_to = match &m.ssh_address {
        Some(a) => Some(parse_host_port(a).ok_or_else(|| {
            PlacementError::Invalid(format!(
                "master SSH address {a:?} must be address[:port], e.g. 10.0.0.5 or 10.0.0.5:2222"
            ))
        })?),
        None => None,
    };
    let unspecified = IpAddr::from([0, 0, 0, 0]);
    let spec = remote_master_spec(
        request.cluster,
        m.advertise_address.unwrap_or(unspecified),
        m,
        request.timeout,
    );
    let infrastructure = InfrastructureSpec {
        firewall: FirewallSpec {
            port: spec.network.ports.apiserver,
            ..FirewallSpec::default()
        },
        master: MasterSpec {
            machine_type: m.size.clone(),
            ssh_public_key: Some(public_key.trim().to_string()),
            ssh_user: m.ssh_user.clone(),
            ..MasterSpec::default()
        },
        ..InfrastructureSpec::default()
    };
    Ok(Placement {
        master: MasterPlacement::Provisioned {
            target,
            spec,
            binaries: request.binaries().await?,
            connect_to,
        },
        infrastructure,
    })
}
