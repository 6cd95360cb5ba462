//! A real control plane as child processes on 127.0.0.1: the `local` provider's master and the
//! fixture every integration test uses.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig as KubeRsKubeconfig};

use super::process::{ComponentProcess, terminate_pid};
use super::{
    MasterError, MasterLayout, MasterNetwork, MasterPorts, apiserver_args, controller_manager_args,
    etcd_args, io_err, scheduler_args,
};
use crate::binaries::{BinaryLocator, BinarySet};
use crate::pki::{CertAndKey, ClusterPki, Kubeconfig, KubeconfigCredentials, PkiOptions};
use crate::provider::ClusterName;

const STATE_FILE: &str = "local-state.json";
// The API server drains open watches before it exits; clients that keep watching (hollow nodes
// still running) would hold it for its full 60 s shutdown timeout.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to start a [`LocalControlPlane`].
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The cluster's name (used in the CA name and kubeconfig contexts).
    pub cluster: ClusterName,
    /// The binaries to run.
    pub binaries: BinarySet,
    /// Where to keep PKI, data and logs; it must not exist or be empty. `None`: a new temporary
    /// directory.
    pub work_dir: Option<PathBuf>,
    /// Keep the work directory (data, logs, PKI) after stop.
    pub keep_data: bool,
    /// How long to wait for each readiness step.
    pub ready_timeout: Duration,
    /// Extra kube-controller-manager flags (they win over the defaults, e.g. a shorter
    /// `--node-monitor-grace-period` for tests).
    pub controller_manager_args: Vec<String>,
    /// Extra kube-apiserver flags (they win over the defaults, e.g. `--goaway-chance` to test
    /// clients against an API server that sends GOAWAY).
    pub apiserver_args: Vec<String>,
    /// Extra kube-scheduler flags (they win over the defaults).
    pub scheduler_args: Vec<String>,
}

impl LocalOptions {
    /// Options for cluster `kubemark` with the binaries found by [`BinaryLocator::from_env`].
    pub fn from_env() -> Result<Self, MasterError> {
        Ok(Self::new(BinaryLocator::from_env().locate()?))
    }

    /// Options for cluster `kubemark` with `binaries`.
    pub fn new(binaries: BinarySet) -> Self {
        Self {
            cluster: ClusterName::new("kubemark").expect("valid name"),
            binaries,
            work_dir: None,
            keep_data: false,
            ready_timeout: Duration::from_secs(120),
            controller_manager_args: Vec::new(),
            apiserver_args: Vec::new(),
            scheduler_args: Vec::new(),
        }
    }
}

/// What a detached control plane leaves behind so another process can find and stop it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalState {
    /// The cluster's name.
    pub cluster: ClusterName,
    /// The work directory.
    pub work_dir: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// The admin kubeconfig.
    pub admin_kubeconfig: PathBuf,
    /// The ports in use.
    pub ports: MasterPorts,
    /// Component name and PID, in start order.
    pub processes: Vec<(String, u32)>,
    /// Whether stop keeps the work directory.
    pub keep_data: bool,
}

impl LocalState {
    /// etcd's own `/metrics` (Prometheus text), read over its TLS client port with the API
    /// server's etcd client certificate: etcd serves metrics only to clients of its CA.
    pub async fn etcd_metrics(&self) -> Result<String, MasterError> {
        let layout = MasterLayout::under(&self.work_dir);
        let read = |name: &str| {
            let path = layout.pki_dir.join(name);
            std::fs::read(&path).map_err(io_err(&path))
        };
        let mut identity = read("apiserver-etcd-client.crt")?;
        identity.extend(read("apiserver-etcd-client.key")?);
        let ca = read(crate::pki::file_names::ETCD_CA_CRT)?;
        let bad = |e: reqwest::Error| MasterError::State(format!("etcd metrics: {e}"));
        let client = reqwest::Client::builder()
            .tls_backend_rustls()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).map_err(bad)?])
            .identity(reqwest::Identity::from_pem(&identity).map_err(bad)?)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(bad)?;
        let url = format!("https://127.0.0.1:{}/metrics", self.ports.etcd_client);
        let response = client.get(&url).send().await.map_err(bad)?;
        let response = response.error_for_status().map_err(bad)?;
        response.text().await.map_err(bad)
    }
}

/// A running control plane. Stopped by [`LocalControlPlane::stop`], or on drop (also during a
/// panic), unless [`LocalControlPlane::detach`]ed.
///
/// ```no_run
/// # async fn demo() -> Result<(), kubemark_core::master::MasterError> {
/// use kubemark_core::master::{LocalControlPlane, LocalOptions};
/// let cp = LocalControlPlane::start(LocalOptions::from_env()?).await?;
/// let client = cp.client().await?;
/// # let _ = client;
/// cp.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LocalControlPlane {
    options: LocalOptions,
    root: PathBuf,
    layout: MasterLayout,
    network: MasterNetwork,
    pki: ClusterPki,
    processes: Vec<ComponentProcess>,
    admin_kubeconfig: PathBuf,
    done: bool,
}

/// Ports this process has chosen for components: a chosen port is free only until its
/// component binds it, so without this one start could choose the same port twice (etcd's client
/// and peer port, say), or two starting at once (tests run in parallel threads) the same one.
static CHOSEN_PORTS: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());

/// A free port below the kernel's ephemeral range, not chosen before by this process. A port the
/// kernel hands out for `:0` is released before the component binds it, and in between any
/// outgoing connection (hollow nodes open thousands) may take it as its local port; ports below
/// the range are never given out that way, so only another listener could take one. Ports from
/// 20000 up stay free for the bench's upstream hollow kubelets (`--kubelet-port` 20000 + 2i).
fn free_port() -> Result<u16, MasterError> {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let high = ephemeral_start.min(20_000);
    let low = high / 2;
    let mut chosen = CHOSEN_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    // A long-lived harness that starts thousands of control planes forgets the oldest choices
    // (their clusters are long gone) rather than run out.
    if chosen.len() >= usize::from(high.saturating_sub(low)) / 2 {
        chosen.clear();
    }
    for _ in 0..256 {
        if low >= high {
            break;
        }
        let port = rand::random_range(low..high);
        if !chosen.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            chosen.insert(port);
            return Ok(port);
        }
    }
    // Everything tried was taken: fall back to the kernel's choice.
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_err(Path::new("127.0.0.1:0")))?;
    Ok(listener
        .local_addr()
        .map_err(io_err(Path::new("127.0.0.1:0")))?
        .port())
}

fn create_root(options: &LocalOptions) -> Result<PathBuf, MasterError> {
    let root = match &options.work_dir {
        Some(dir) => {
            if dir.exists()
                && std::fs::read_dir(dir)
                    .map_err(io_err(dir))?
                    .next()
                    .is_some()
            {
                return Err(MasterError::State(format!(
                    "work directory {} is not empty (is a cluster already running there? stop it first)",
                    dir.display()
                )));
            }
            dir.clone()
        }
        None => tempfile::Builder::new()
            .prefix("kubemark-local-")
            .tempdir()
            .map_err(io_err(&std::env::temp_dir()))?
            .keep(),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
        .map_err(io_err(&root))?;
    // Canonical, so the path in every component's command line matches what stop looks for.
    root.canonicalize().map_err(io_err(&root))
}

impl LocalControlPlane {
    /// Generates a PKI, starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler
    /// and waits until the API server is ready and both controllers hold their leader lease.
    ///
    /// On any failure, everything started so far is stopped and the work directory removed.
    /// A component that finds its port taken (another program bound it between our choice and
    /// its start) is not a failure of the cluster: the start is tried again, on new ports, up to
    /// three times.
    pub async fn start(options: LocalOptions) -> Result<Self, MasterError> {
        // A kept work directory of a failed try stays for inspection, and the next try could not
        // use it.
        let attempts = if options.keep_data && options.work_dir.is_some() {
            1
        } else {
            3
        };
        let mut attempt = 1;
        loop {
            match Self::start_once(options.clone()).await {
                Err(e) if attempt < attempts && e.is_port_taken() => {
                    tracing::warn!(error = %e, attempt, "a port of the control plane was taken; starting again on other ports");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(options: LocalOptions) -> Result<Self, MasterError> {
        let root = create_root(&options)?;
        let layout = MasterLayout::under(&root);
        let ports = MasterPorts {
            etcd_client: free_port()?,
            etcd_peer: free_port()?,
            apiserver: free_port()?,
            controller_manager: free_port()?,
            scheduler: free_port()?,
        };
        let network = MasterNetwork::loopback(ports);
        let mut pki_options =
            PkiOptions::new(options.cluster.as_str(), vec![network.advertise_address]);
        pki_options.service_cidr = network.service_cidr.clone();
        let pki = ClusterPki::generate(pki_options)?;
        let admin_kubeconfig = root.join("admin.kubeconfig");
        // From here on, Drop cleans up whatever fails.
        let mut cp = Self {
            options,
            root,
            layout,
            network,
            pki,
            processes: Vec::new(),
            admin_kubeconfig,
            done: false,
        };
        cp.prepare_files()?;
        cp.launch().await?;
        Ok(cp)
    }

    fn prepare_files(&self) -> Result<(), MasterError> {
        let l = &self.layout;
        for dir in [&l.etcd_data_dir, &l.kubeconfig_dir, &l.run_dir, &l.log_dir] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir))?;
        }
        self.pki.write(&l.pki_dir)?;
        self.kubeconfig_for("kubemark-admin", self.pki.admin.clone())
            .write(&self.admin_kubeconfig)?;
        self.kubeconfig_for("controller-manager", self.pki.controller_manager.clone())
            .write(&l.kubeconfig("controller-manager"))?;
        self.kubeconfig_for("scheduler", self.pki.scheduler.clone())
            .write(&l.kubeconfig("scheduler"))?;
        Ok(())
    }

    async fn launch(&mut self) -> Result<(), MasterError> {
        let (l, n, b) = (&self.layout, &self.network, &self.options.binaries);
        let etcd = ComponentProcess::spawn(
            "etcd",
            &b.etcd,
            &etcd_args(l, n),
            l.log_dir.join("etcd.log"),
        )?;
        self.processes.push(etcd);
        self.wait_for("etcd to accept connections", |cp| {
            let port = cp.network.ports.etcd_client;
            async move { Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()) }
        })
        .await?;

        let (l, n, b) = (&self.layout, &self.network, &self.options.binaries);
        let mut api_args = apiserver_args(l, n);
        api_args.extend(self.options.apiserver_args.iter().cloned());
        let apiserver = ComponentProcess::spawn(
            "kube-apiserver",
            &b.kube_apiserver,
            &api_args,
            l.log_dir.join("kube-apiserver.log"),
        )?;
        self.processes.push(apiserver);
        let client = self.client().await?;
        self.wait_for("kube-apiserver /readyz", |_| {
            let client = client.clone();
            async move { Ok(apiserver_ready(&client).await) }
        })
        .await?;

        let (l, n, b) = (&self.layout, &self.network, &self.options.binaries);
        let mut kcm_args = controller_manager_args(l, n);
        kcm_args.extend(self.options.controller_manager_args.iter().cloned());
        let kcm = ComponentProcess::spawn(
            "kube-controller-manager",
            &b.kube_controller_manager,
            &kcm_args,
            l.log_dir.join("kube-controller-manager.log"),
        )?;
        self.processes.push(kcm);
        let mut sched_args = scheduler_args(l, n);
        sched_args.extend(self.options.scheduler_args.iter().cloned());
        let scheduler = ComponentProcess::spawn(
            "kube-scheduler",
            &b.kube_scheduler,
            &sched_args,
            l.log_dir.join("kube-scheduler.log"),
        )?;
        self.processes.push(scheduler);
        // Holding the leader lease proves each controller authenticated, is authorized and runs.
        let leases: Api<Lease> = Api::namespaced(client, "kube-system");
        for name in ["kube-controller-manager", "kube-scheduler"] {
            let leases = leases.clone();
            self.wait_for(&format!("{name} to hold its leader lease"), move |_| {
                let leases = leases.clone();
                async move {
                    let lease = leases.get_opt(name).await.ok().flatten();
                    Ok(lease
                        .and_then(|l| l.spec?.holder_identity)
                        .is_some_and(|h| !h.is_empty()))
                }
            })
            .await?;
        }
        tracing::info!(server = %self.server_url(), root = %self.root.display(), "local control plane ready");
        Ok(())
    }

    /// Polls `check` until true; fails early, with the log's tail, when a component exits.
    async fn wait_for<F, Fut>(&mut self, what: &str, check: F) -> Result<(), MasterError>
    where
        F: Fn(&Self) -> Fut,
        Fut: std::future::Future<Output = Result<bool, MasterError>>,
    {
        let start = Instant::now();
        loop {
            for p in &mut self.processes {
                p.check_alive()?;
            }
            if check(self).await? {
                tracing::debug!(
                    what,
                    elapsed_ms = start.elapsed().as_millis() as u64,
                    "ready"
                );
                return Ok(());
            }
            if start.elapsed() > self.options.ready_timeout {
                return Err(MasterError::Timeout {
                    what: what.into(),
                    seconds: self.options.ready_timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops kube-apiserver and starts it again with the same flags (as an upgrade or crash
    /// would), waits until it is ready, and restarts the controller-manager and scheduler if they
    /// exited meanwhile (they exit when they lose their leader lease, as upstream's do; a real
    /// master's supervisor restarts them).
    pub async fn restart_apiserver(&mut self) -> Result<(), MasterError> {
        let index = self
            .processes
            .iter()
            .position(|p| p.component == "kube-apiserver")
            .ok_or_else(|| MasterError::State("kube-apiserver is not running".into()))?;
        self.processes[index].terminate(STOP_GRACE).await;
        self.processes[index].respawn_if_exited()?;
        let client = self.client().await?;
        let start = Instant::now();
        loop {
            self.processes[index].check_alive()?;
            if apiserver_ready(&client).await {
                break;
            }
            if start.elapsed() > self.options.ready_timeout {
                return Err(MasterError::Timeout {
                    what: "kube-apiserver /readyz after restart".into(),
                    seconds: self.options.ready_timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.supervise().map(|_| ())
    }

    /// Restarts any component that has exited; returns the restarted components' names
    /// (`kube-controller-manager`, ...), empty when all were running.
    pub fn supervise(&mut self) -> Result<Vec<&'static str>, MasterError> {
        let mut restarted = Vec::new();
        for p in &mut self.processes {
            if p.respawn_if_exited()? {
                restarted.push(p.component());
            }
        }
        Ok(restarted)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> String {
        format!(
            "https://{}:{}",
            self.network.advertise_address, self.network.ports.apiserver
        )
    }

    /// The admin kubeconfig (`system:masters`), for kubectl and tests.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The work directory (PKI, data, logs).
    pub fn work_dir(&self) -> &Path {
        &self.root
    }

    /// The log file of `component` (`etcd`, `kube-apiserver`, ...).
    pub fn log_path(&self, component: &str) -> PathBuf {
        self.layout.log_dir.join(format!("{component}.log"))
    }

    /// The ports in use.
    pub fn ports(&self) -> MasterPorts {
        self.network.ports
    }

    /// The cluster's PKI (to issue per-node kubelet certificates).
    pub fn pki(&self) -> &ClusterPki {
        &self.pki
    }

    /// Component names and PIDs, in start order.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.processes
            .iter()
            .map(|p| (p.component.to_string(), p.pid()))
            .collect()
    }

    /// A kubeconfig for this cluster with a client certificate.
    pub fn kubeconfig_for(&self, name: &str, cert: CertAndKey) -> Kubeconfig {
        Kubeconfig {
            name: name.to_string(),
            server: self.server_url(),
            ca_pem: self.pki.ca.cert_pem().to_string(),
            credentials: KubeconfigCredentials::ClientCert(cert),
        }
    }

    /// An admin client.
    pub async fn client(&self) -> Result<kube::Client, MasterError> {
        client_from_kubeconfig(&self.admin_kubeconfig).await
    }

    /// Fails when a component has exited.
    pub fn check_health(&mut self) -> Result<(), MasterError> {
        self.processes
            .iter_mut()
            .try_for_each(ComponentProcess::check_alive)
    }

    /// Stops every component (SIGTERM, then SIGKILL after a grace period), newest first, and
    /// removes the work directory unless asked to keep it.
    pub async fn stop(mut self) -> Result<(), MasterError> {
        while let Some(mut p) = self.processes.pop() {
            p.terminate(STOP_GRACE).await;
        }
        self.done = true;
        self.remove_work_dir()
    }

    /// Leaves the components running after this value is dropped and writes the state another
    /// process needs to stop them ([`LocalControlPlane::stop_detached`]).
    pub fn detach(mut self) -> Result<LocalState, MasterError> {
        let state = LocalState {
            cluster: self.options.cluster.clone(),
            work_dir: self.root.clone(),
            server: self.server_url(),
            admin_kubeconfig: self.admin_kubeconfig.clone(),
            ports: self.network.ports,
            processes: self.pids(),
            keep_data: self.options.keep_data,
        };
        let json =
            serde_json::to_string_pretty(&state).map_err(|e| MasterError::State(e.to_string()))?;
        crate::pki::write_private(&self.root.join(STATE_FILE), &json)?;
        self.done = true;
        Ok(state)
    }

    /// Reads the state a detached control plane wrote into `work_dir`.
    pub fn read_state(work_dir: &Path) -> Result<LocalState, MasterError> {
        let path = work_dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        serde_json::from_str(&text).map_err(|e| {
            MasterError::State(format!(
                "{}: not a kubemark local state file: {e}",
                path.display()
            ))
        })
    }

    /// Stops a detached control plane; safe to call again (processes already gone are skipped).
    pub async fn stop_detached(state: &LocalState) -> Result<(), MasterError> {
        let marker = state.work_dir.display().to_string();
        for (name, pid) in state.processes.iter().rev() {
            tracing::info!(component = %name, pid, "stopping");
            terminate_pid(*pid, &marker, STOP_GRACE).await;
        }
        if !state.keep_data {
            remove_dir(&state.work_dir)?;
        }
        Ok(())
    }

    fn remove_work_dir(&self) -> Result<(), MasterError> {
        if self.options.keep_data {
            Ok(())
        } else {
            remove_dir(&self.root)
        }
    }
}

/// Whether the API server's `/readyz` answers `ok`.
pub async fn apiserver_ready(client: &kube::Client) -> bool {
    let req = http::Request::get("/readyz")
        .body(Vec::new())
        .expect("static request");
    matches!(client.request_text(req).await, Ok(body) if body.trim() == "ok")
}

fn remove_dir(dir: &Path) -> Result<(), MasterError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(dir)(e)),
        _ => Ok(()),
    }
}

/// A client from a kubeconfig file, with its current context.
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client, MasterError> {
    crate::tls::install_crypto_provider();
    let kubeconfig = KubeRsKubeconfig::read_from(path)
        .map_err(|e| MasterError::Kubeconfig(format!("{}: {e}", path.display())))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| MasterError::Kubeconfig(format!("{}: {e}", path.display())))?;
    Ok(kube::Client::try_from(config)?)
}

impl Drop for LocalControlPlane {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Reached on errors, panics and forgotten stops: nothing may outlive the value.
        while let Some(mut p) = self.processes.pop() {
            p.kill_now();
        }
        if let Err(e) = self.remove_work_dir() {
            tracing::warn!(error = %e, "could not remove the work directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_ports_are_never_chosen_twice() {
        // Five per start: a few hundred starts' worth, each port bound once and released, as a
        // component's would be until it starts.
        let ports: Vec<u16> = (0..500).map(|_| free_port().unwrap()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        assert!(
            ports.iter().all(|p| *p < 20_000),
            "below the upstream kubelets' ports"
        );
    }

    #[test]
    fn only_a_bind_failure_counts_as_a_taken_port() {
        let exited = |tail: &str| MasterError::Exited {
            component: "etcd",
            status: "exit status: 1".into(),
            log: "etcd.log".into(),
            tail: tail.into(),
        };
        let taken = exited("listen tcp 127.0.0.1:14962: bind: address already in use");
        assert!(taken.is_port_taken());
        assert!(!exited("open /etc/ssl/x.pem: no such file or directory").is_port_taken());
        let timeout = MasterError::Timeout {
            what: "kube-apiserver /readyz".into(),
            seconds: 60,
        };
        assert!(!timeout.is_port_taken());
    }
}
