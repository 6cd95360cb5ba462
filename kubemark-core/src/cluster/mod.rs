//! The plan that starts and stops a kubemark cluster's master, shared by the CLI and any test
//! harness that embeds kubemark: the provider's infrastructure (tagged as the cluster's), the
//! PKI, the master (local processes, or a host bootstrapped over SSH), an admin kubeconfig, and a
//! state file written before every step so that [`Cluster::stop`] removes everything even after
//! a crash half-way.
//!
//! Hollow nodes are the caller's part: run them in-process with `kubemark-hollow`, as a local
//! process, or as pods on an external cluster, with the credentials [`Cluster`] hands out, and
//! record where with [`Cluster::record_nodes`] so that [`Cluster::stop`] ends them first.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kubemark_core::cluster::ClusterError> {
//! use std::sync::Arc;
//! use kubemark_core::cluster::{Cluster, ClusterSpec, MasterPlacement};
//! use kubemark_core::master::LocalOptions;
//! use kubemark_core::provider::{ClusterName, LocalProvider};
//!
//! let name = ClusterName::new("my-test").unwrap();
//! let master = MasterPlacement::Local(LocalOptions::from_env()?);
//! let spec = ClusterSpec::new(name, "/tmp/my-test", master);
//! let cluster = Cluster::start(Arc::new(LocalProvider), spec).await?;
//! let client = cluster.client().await?;
//! // ... start hollow nodes, run a workload with `client` ...
//! # let _ = client;
//! cluster.stop(Arc::new(LocalProvider)).await?;
//! # Ok(()) }
//! ```
mod nodes;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::binaries::BinarySet;
use crate::bootstrap::{BootstrapError, SshSession, SshTarget};
use crate::master::{
    ComponentStatus, LocalControlPlane, LocalOptions, LocalState, MasterError, RemoteMaster,
    RemoteMasterSpec, apiserver_ready, client_from_kubeconfig, pids_mentioning, terminate_pid,
};
use crate::pki::{ClusterPki, PkiError, PkiOptions, write_private};
use crate::provider::{
    ClusterName, DynProvider, InfrastructureSpec, ProviderExt, ProviderSettings,
};

pub use nodes::{
    ExternalDeployment, HOLLOW_DIR, HollowProcess, NodePlacement, stop_unrecorded_hollow,
};

/// The state file's `apiVersion`.
pub const API_VERSION: &str = "kubemark.io/v1alpha1";
const STATE_FILE: &str = "cluster.json";

/// Errors of starting and stopping a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The master failed.
    #[error(transparent)]
    Master(#[from] MasterError),
    /// SSH failed.
    #[error(transparent)]
    Ssh(#[from] BootstrapError),
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] crate::provider::Error),
    /// PKI generation or writing failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The state directory or file is unusable.
    #[error("{0}")]
    State(String),
    /// A cluster of that name runs already.
    #[error("cluster {0} is already running (state in {1}); stop it first")]
    AlreadyRunning(ClusterName, PathBuf),
}

/// Where the master runs.
#[derive(Debug, Clone)]
// Built once per cluster; boxing would only make construction noisier.
#[allow(clippy::large_enum_variant)]
pub enum MasterPlacement {
    /// Processes on this machine.
    Local(LocalOptions),
    /// A host reached over SSH, bootstrapped with `binaries`.
    Ssh {
        /// How to reach it.
        target: SshTarget,
        /// Where and how the master runs there.
        spec: RemoteMasterSpec,
        /// The binaries to install.
        binaries: BinarySet,
    },
    /// A VM the provider creates (`ensure_master`, with the rest of its infrastructure), then
    /// bootstrapped over SSH like [`MasterPlacement::Ssh`]. `target.host` is replaced by the
    /// VM's address unless `connect_to` gives another one (emulators, NAT, a forwarded port);
    /// an unspecified advertise address becomes the VM's public address.
    Provisioned {
        /// Login user, key, host key policy (host and port are filled in).
        target: SshTarget,
        /// Where and how the master runs on the VM.
        spec: RemoteMasterSpec,
        /// The binaries to install.
        binaries: BinarySet,
        /// `(host, port)` to reach the VM's SSH instead of its address.
        connect_to: Option<(String, u16)>,
    },
    /// A master that already runs, reached with an admin kubeconfig; nothing is installed and
    /// stop leaves it running. Without its CA key, hollow nodes join by TLS bootstrap.
    Existing {
        /// Admin kubeconfig of the running master.
        kubeconfig: PathBuf,
    },
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The cluster's name; every resource and directory carries it.
    pub name: ClusterName,
    /// A private directory for the state file, the admin kubeconfig and (for remote masters) the
    /// CA that signs hollow-node certificates. Created 0700.
    pub dir: PathBuf,
    /// Where the master runs.
    pub master: MasterPlacement,
    /// What the provider creates (for providers that declare capabilities).
    pub infrastructure: InfrastructureSpec,
    /// The provider's settings to record, so that stop rebuilds the same provider; never
    /// secrets (see [`ProviderSettings::public`]).
    pub provider_settings: ProviderSettings,
}

impl ClusterSpec {
    /// A spec with the default infrastructure.
    pub fn new(name: ClusterName, dir: impl Into<PathBuf>, master: MasterPlacement) -> Self {
        Self {
            name,
            dir: dir.into(),
            master,
            infrastructure: InfrastructureSpec::default(),
            provider_settings: ProviderSettings::default(),
        }
    }
}

/// How far a start got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Recorded before anything was created.
    Starting,
    /// The provider's infrastructure exists.
    Infrastructure,
    /// The master is ready and the admin kubeconfig written.
    Running,
}

/// The master as recorded.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum MasterState {
    /// Local processes.
    Local {
        /// Filled once the processes run.
        state: Option<LocalState>,
        /// The work directory (known before start, so a crash can be cleaned up).
        work_dir: PathBuf,
    },
    /// A host over SSH.
    Ssh {
        /// How to reach it.
        target: SshTarget,
        /// Where the master runs there.
        spec: RemoteMasterSpec,
        /// Whether start logged in and may have written to the host; until then stop has
        /// nothing to remove there (and need not reach a host that refused us).
        #[serde(default)]
        touched: bool,
    },
    /// A master that ran before kubemark and keeps running after it.
    Existing {
        /// Its admin kubeconfig.
        kubeconfig: PathBuf,
    },
}

/// The state file (`<dir>/cluster.json`, 0600).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterState {
    /// [`API_VERSION`].
    pub api_version: String,
    /// `ClusterState`.
    pub kind: String,
    /// The cluster.
    pub cluster: ClusterName,
    /// The provider's name.
    pub provider: String,
    /// The provider's recorded (non-secret) settings.
    #[serde(default, skip_serializing_if = "ProviderSettings::is_empty")]
    pub provider_settings: ProviderSettings,
    /// How far start got.
    pub phase: Phase,
    /// The master.
    pub master: MasterState,
    /// `https://host:port` of the API server, once known.
    pub server: Option<String>,
    /// A copy of the admin kubeconfig written for the user outside this directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_kubeconfig: Option<PathBuf>,
    /// Where the hollow nodes run, once the caller recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodePlacement>,
}

/// A cluster whose master runs (or ran: see [`Cluster::load`]).
#[derive(Debug, Clone)]
pub struct Cluster {
    dir: PathBuf,
    state: ClusterState,
}

/// Stops the process here when `KUBEMARK_CRASH_AFTER` names `step`: the crash-safety tests kill
/// `start` after each step and check that `stop` still removes everything. Aborts, so no
/// destructor runs, as in a real crash. Without the `crash-points` feature (production builds)
/// it does nothing.
#[cfg(feature = "crash-points")]
pub fn crash_point(step: &str) {
    if std::env::var("KUBEMARK_CRASH_AFTER").is_ok_and(|s| s == step) {
        eprintln!("KUBEMARK_CRASH_AFTER={step}: aborting");
        std::process::abort();
    }
}

/// Does nothing: crash points exist only with the `crash-points` feature (tests).
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn crash_point(_step: &str) {}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |e| ClusterError::State(format!("{}: {e}", path.display()))
}

impl Cluster {
    /// Reads the state in `dir`; `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>, ClusterError> {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let state: ClusterState = serde_json::from_str(&text).map_err(|e| {
            ClusterError::State(format!(
                "{} is not a kubemark state file: {e}",
                path.display()
            ))
        })?;
        if state.api_version != API_VERSION {
            return Err(ClusterError::State(format!(
                "{} has apiVersion {}, this kubemark reads {API_VERSION}",
                path.display(),
                state.api_version
            )));
        }
        Ok(Some(Self {
            dir: dir.to_path_buf(),
            state,
        }))
    }

    fn save(&self) -> Result<(), ClusterError> {
        let json = serde_json::to_string_pretty(&self.state)
            .map_err(|e| ClusterError::State(e.to_string()))?;
        write_private(&self.dir.join(STATE_FILE), &json)?;
        Ok(())
    }

    /// Starts the cluster: records it, ensures the provider's infrastructure, generates the
    /// PKI, starts the master and waits until it is ready, writes the admin kubeconfig.
    ///
    /// A state left by a crashed start is cleaned up first (so a re-run continues to a running
    /// cluster); a cluster that runs is an error. When a step fails, what was created is removed;
    /// if that removal fails too, the state file stays so that [`Cluster::stop`] can finish it.
    pub async fn start(provider: DynProvider, spec: ClusterSpec) -> Result<Self, ClusterError> {
        if let Some(old) = Self::load(&spec.dir)? {
            if old.state.phase == Phase::Running && old.healthy().await {
                return Err(ClusterError::AlreadyRunning(spec.name, spec.dir));
            }
            tracing::warn!(cluster = %spec.name, "cleaning up what a previous start left");
            old.stop(provider.clone()).await?;
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&spec.dir)
            .map_err(io(&spec.dir))?;
        let master = match &spec.master {
            MasterPlacement::Local(o) => MasterState::Local {
                state: None,
                work_dir: o
                    .work_dir
                    .clone()
                    .unwrap_or_else(|| spec.dir.join("master")),
            },
            MasterPlacement::Ssh {
                target, spec: m, ..
            } => MasterState::Ssh {
                target: target.clone(),
                spec: m.clone(),
                touched: false,
            },
            MasterPlacement::Provisioned {
                target, spec: m, ..
            } => MasterState::Ssh {
                target: target.clone(),
                spec: m.clone(),
                touched: false,
            },
            MasterPlacement::Existing { kubeconfig } => MasterState::Existing {
                kubeconfig: std::path::absolute(kubeconfig).map_err(io(kubeconfig))?,
            },
        };
        let mut cluster = Self {
            dir: spec.dir.clone(),
            state: ClusterState {
                api_version: API_VERSION.into(),
                kind: "ClusterState".into(),
                cluster: spec.name.clone(),
                provider: provider.name().to_string(),
                provider_settings: spec.provider_settings.clone(),
                phase: Phase::Starting,
                master,
                server: None,
                user_kubeconfig: None,
                nodes: None,
            },
        };
        cluster.save()?;
        crash_point("recorded");
        match cluster.bring_up(provider.clone(), spec).await {
            Ok(()) => Ok(cluster),
            Err(e) => {
                if let Err(cleanup) = cluster.clone().stop(provider).await {
                    tracing::warn!(error = %cleanup, "cleanup after a failed start failed; `stop` retries it");
                }
                Err(e)
            }
        }
    }

    async fn bring_up(
        &mut self,
        provider: DynProvider,
        spec: ClusterSpec,
    ) -> Result<(), ClusterError> {
        let infra = provider
            .ensure_infrastructure(&spec.name, &spec.infrastructure)
            .await?;
        self.state.phase = Phase::Infrastructure;
        self.save()?;
        crash_point("infrastructure");
        let placement = match spec.master {
            MasterPlacement::Provisioned {
                mut target,
                spec: mut m,
                binaries,
                connect_to,
            } => {
                let vm = infra.master.as_ref().ok_or_else(|| {
                    ClusterError::State(format!(
                        "the {} provider created no master VM (it does not declare one)",
                        provider.name()
                    ))
                })?;
                let address = vm.public_ip.or(vm.private_ip).ok_or_else(|| {
                    ClusterError::State(format!("master VM {} has no address", vm.name))
                })?;
                if target.user.is_empty() {
                    target.user = vm
                        .ssh
                        .as_ref()
                        .map(|s| s.user.clone())
                        .unwrap_or_else(|| "root".into());
                }
                (target.host, target.port) = match connect_to {
                    Some((h, p)) => (h, p),
                    None => (address.to_string(), vm.ssh.as_ref().map_or(22, |s| s.port)),
                };
                if m.network.advertise_address.is_unspecified() {
                    m.network.advertise_address = address;
                }
                self.state.master = MasterState::Ssh {
                    target: target.clone(),
                    spec: m.clone(),
                    touched: false,
                };
                self.save()?;
                MasterPlacement::Ssh {
                    target,
                    spec: m,
                    binaries,
                }
            }
            other => other,
        };
        match placement {
            MasterPlacement::Local(mut options) => {
                options.cluster = spec.name.clone();
                if let MasterState::Local { work_dir, .. } = &self.state.master {
                    options.work_dir = Some(work_dir.clone());
                }
                let cp = LocalControlPlane::start(options).await?;
                self.state.server = Some(cp.server_url());
                let state = cp.detach()?;
                if let MasterState::Local { state: s, .. } = &mut self.state.master {
                    *s = Some(state);
                }
                self.save()?;
            }
            MasterPlacement::Ssh {
                target,
                spec: m,
                binaries,
            } => {
                let mut addresses = vec![m.network.advertise_address];
                // The controllers on the master reach the API server on a specific bind address.
                if !m.network.bind_address.is_unspecified()
                    && m.network.bind_address != m.network.advertise_address
                {
                    addresses.push(m.network.bind_address);
                }
                let mut o = PkiOptions::new(spec.name.as_str(), addresses);
                o.service_cidr = m.network.service_cidr.clone();
                let pki = tokio::task::spawn_blocking(move || ClusterPki::generate(o))
                    .await
                    .map_err(|e| ClusterError::State(e.to_string()))??;
                // What this machine needs later: the CA to sign node certificates, kube-proxy's
                // identity, the admin kubeconfig. The rest of the PKI exists only on the master.
                let local_pki = self.dir.join("pki");
                crate::pki::PkiDir::at(&local_pki)?.keep();
                write_private(&local_pki.join("ca.crt"), pki.ca.cert_pem())?;
                write_private(&local_pki.join("ca.key"), &pki.ca.key_pem())?;
                write_private(&local_pki.join("kube-proxy.crt"), &pki.kube_proxy.cert_pem)?;
                write_private(&local_pki.join("kube-proxy.key"), &pki.kube_proxy.key_pem)?;
                self.state.server = Some(m.server_url());
                self.save()?;
                crash_point("pki");
                let ssh = SshSession::connect(&target).await?;
                if let MasterState::Ssh { touched, .. } = &mut self.state.master {
                    *touched = true;
                }
                self.save()?;
                let remote = RemoteMaster::new(&ssh, m)?;
                let result = remote.bootstrap(&pki, &binaries).await;
                let admin = remote.kubeconfig(&pki, "kubemark-admin", pki.admin.clone());
                let _ = ssh.close().await;
                result?;
                admin.write(&self.admin_kubeconfig())?;
            }
            MasterPlacement::Provisioned { .. } => unreachable!("resolved into Ssh above"),
            MasterPlacement::Existing { kubeconfig } => {
                let client = client_from_kubeconfig(&kubeconfig).await?;
                if !apiserver_ready(&client).await {
                    return Err(ClusterError::State(format!(
                        "the master of kubeconfig {} is not ready (its /readyz does not answer ok)",
                        kubeconfig.display()
                    )));
                }
                let (server, ca) = server_and_ca(&kubeconfig)?;
                let local_pki = self.dir.join("pki");
                crate::pki::PkiDir::at(&local_pki)?.keep();
                crate::pki::write_public(&local_pki.join("ca.crt"), &ca)?;
                self.state.server = Some(server);
                self.save()?;
            }
        }
        crash_point("master");
        self.state.phase = Phase::Running;
        self.save()?;
        Ok(())
    }

    /// Whether the API server answers `/readyz` with the recorded credentials.
    pub async fn healthy(&self) -> bool {
        match self.client().await {
            Ok(c) => apiserver_ready(&c).await,
            Err(_) => false,
        }
    }

    /// Records where the hollow nodes run (before they are started, when they can be: a
    /// deployment half-done is then removed by stop too).
    pub fn record_nodes(&mut self, nodes: NodePlacement) -> Result<(), ClusterError> {
        self.state.nodes = Some(nodes);
        self.save()
    }

    /// Records a copy of the admin kubeconfig made outside the state directory, which stop
    /// removes.
    pub fn record_user_kubeconfig(&mut self, path: &Path) -> Result<(), ClusterError> {
        self.state.user_kubeconfig = Some(std::path::absolute(path).map_err(io(path))?);
        self.save()
    }

    /// Where the hollow nodes run, if recorded.
    pub fn nodes(&self) -> Option<&NodePlacement> {
        self.state.nodes.as_ref()
    }

    /// Stops everything a start made, in one order whatever the placements: the hollow nodes
    /// (their watches would otherwise hold the API server's graceful shutdown), the user's
    /// kubeconfig, on a master kubemark does not own the Nodes and bootstrap token it added,
    /// the master (processes, files on the master host), the provider's resources by tag, and
    /// the state directory. Safe to repeat; works from any phase a start reached.
    pub async fn stop(self, provider: DynProvider) -> Result<(), ClusterError> {
        match &self.state.nodes {
            Some(NodePlacement::LocalProcess(h)) => h.stop().await,
            Some(NodePlacement::External(e)) => {
                let external = client_from_kubeconfig(&e.kubeconfig).await.map_err(|err| {
                    ClusterError::State(format!(
                        "external cluster {}: {err}",
                        e.kubeconfig.display()
                    ))
                })?;
                crate::deploy::teardown(
                    &external,
                    &self.state.cluster,
                    &e.namespace,
                    std::time::Duration::from_secs(300),
                )
                .await
                .map_err(|err| {
                    ClusterError::State(format!(
                        "removing the hollow-node pods from the external cluster {}: {err}",
                        e.kubeconfig.display()
                    ))
                })?;
            }
            Some(NodePlacement::InProcess { .. }) | None => {}
        }
        stop_unrecorded_hollow(&self.dir).await;
        if let Some(k) = &self.state.user_kubeconfig {
            match std::fs::remove_file(k) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(k)(e)),
                _ => {}
            }
        }
        if matches!(self.state.master, MasterState::Existing { .. }) {
            self.clean_existing_master().await?;
        }
        match &self.state.master {
            MasterState::Local { state, work_dir } => match state {
                Some(s) => LocalControlPlane::stop_detached(s).await?,
                None => {
                    // A start that crashed before it recorded the processes: find them by the
                    // work directory every component's command line names.
                    let marker = work_dir.display().to_string();
                    for pid in pids_mentioning(&marker) {
                        terminate_pid(pid, &marker, std::time::Duration::from_secs(10)).await;
                    }
                    remove_dir(work_dir)?;
                }
            },
            MasterState::Existing { .. } => {}
            MasterState::Ssh {
                target,
                spec,
                touched,
            } => {
                if *touched {
                    let ssh = SshSession::connect(target).await?;
                    let r = RemoteMaster::new(&ssh, spec.clone())?.teardown().await;
                    let _ = ssh.close().await;
                    r?;
                }
            }
        }
        provider
            .teardown(&self.state.cluster, Default::default())
            .await?;
        remove_dir(&self.dir)
    }

    /// The master stays; what kubemark put on it goes: the hollow Nodes and the bootstrap
    /// token with its bindings.
    async fn clean_existing_master(&self) -> Result<(), ClusterError> {
        let client = match self.client().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the running master to remove the hollow nodes");
                return Ok(());
            }
        };
        let names = self
            .state
            .nodes
            .as_ref()
            .map(NodePlacement::node_names)
            .unwrap_or_default();
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
        for n in names {
            match nodes.delete(&n, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(ClusterError::State(format!("deleting node {n}: {e}")));
                }
            }
        }
        crate::master::remove_node_bootstrap(&client)
            .await
            .map_err(|e| {
                ClusterError::State(format!("removing kubemark's bootstrap token: {e}"))
            })?;
        Ok(())
    }

    /// The state.
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        match &self.state.master {
            MasterState::Local { state: Some(s), .. } => s.admin_kubeconfig.clone(),
            MasterState::Existing { kubeconfig } => kubeconfig.clone(),
            _ => self.dir.join("admin.kubeconfig"),
        }
    }

    /// The directory with `ca.crt`, `ca.key`, `kube-proxy.crt` and `kube-proxy.key` (0600), for
    /// issuing hollow-node identities.
    pub fn pki_dir(&self) -> PathBuf {
        match &self.state.master {
            MasterState::Local { work_dir, .. } => work_dir.join("pki"),
            MasterState::Ssh { .. } | MasterState::Existing { .. } => self.dir.join("pki"),
        }
    }

    /// `https://host:port`.
    pub fn server(&self) -> Option<&str> {
        self.state.server.as_deref()
    }

    /// The local master's state, when the master is local and running.
    pub fn local(&self) -> Option<&LocalState> {
        match &self.state.master {
            MasterState::Local { state, .. } => state.as_ref(),
            MasterState::Ssh { .. } | MasterState::Existing { .. } => None,
        }
    }

    /// An admin client.
    pub async fn client(&self) -> Result<kube::Client, ClusterError> {
        Ok(client_from_kubeconfig(&self.admin_kubeconfig()).await?)
    }

    /// Each master component's process state (for a remote master, read over SSH).
    pub async fn master_status(&self) -> Result<Vec<ComponentStatus>, ClusterError> {
        match &self.state.master {
            MasterState::Local { state, .. } => Ok(state
                .iter()
                .flat_map(|s| s.processes.iter())
                .map(|(name, pid)| ComponentStatus {
                    name: name.clone(),
                    supervisor_pid: None,
                    pid: std::path::Path::new(&format!("/proc/{pid}"))
                        .exists()
                        .then_some(*pid),
                    restarts: 0,
                })
                .collect()),
            // Its processes are not kubemark's to know.
            MasterState::Existing { .. } => Ok(Vec::new()),
            MasterState::Ssh { target, spec, .. } => {
                let ssh = SshSession::connect(target).await?;
                let r = RemoteMaster::new(&ssh, spec.clone())?.status().await;
                let _ = ssh.close().await;
                Ok(r?)
            }
        }
    }
}

/// The API server URL and CA (PEM) of a kubeconfig's current context.
fn server_and_ca(path: &Path) -> Result<(String, String), ClusterError> {
    let bad = |m: String| ClusterError::State(format!("kubeconfig {}: {m}", path.display()));
    let k = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
    let context = k
        .current_context
        .as_deref()
        .ok_or_else(|| bad("has no current-context".into()))?;
    let cluster_name = k
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| bad(format!("context {context} is missing")))?;
    let cluster = k
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| bad(format!("cluster {cluster_name} is missing")))?;
    let server = cluster
        .server
        .ok_or_else(|| bad("the cluster has no server".into()))?;
    let ca = match (
        cluster.certificate_authority_data,
        cluster.certificate_authority,
    ) {
        (Some(data), _) => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| bad(format!("certificate-authority-data: {e}")))?;
            String::from_utf8(bytes).map_err(|e| bad(e.to_string()))?
        }
        (None, Some(file)) => {
            std::fs::read_to_string(&file).map_err(|e| bad(format!("{file}: {e}")))?
        }
        (None, None) => return Err(bad("the cluster has no certificate authority".into())),
    };
    Ok((server, ca))
}

fn remove_dir(dir: &Path) -> Result<(), ClusterError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(dir)(e)),
        _ => Ok(()),
    }
}
