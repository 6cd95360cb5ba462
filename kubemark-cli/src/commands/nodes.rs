//! Hollow nodes of a local cluster: started as one `hollow-node --count N` process,
//! joined by TLS bootstrap, waited for with a progress bar.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kubemark_core::master::{
    BootstrapToken, client_from_kubeconfig, ensure_node_bootstrap, log_tail, pid_is_ours,
};
use std::path::PathBuf;

use kubemark_core::cluster::HollowProcess;

pub use crate::cli::NodeCerts;

/// What hollow nodes need of a master, wherever it runs.
#[derive(Debug, Clone)]
pub struct MasterAccess {
    /// `https://host:port`.
    pub server: String,
    /// An admin kubeconfig.
    pub admin_kubeconfig: PathBuf,
    /// `ca.crt`, `ca.key`, `kube-proxy.crt`, `kube-proxy.key`.
    pub pki_dir: PathBuf,
}

impl MasterAccess {
    /// A started cluster's.
    pub fn of(c: &kubemark_core::cluster::Cluster) -> anyhow::Result<Self> {
        Ok(Self {
            server: c
                .server()
                .context("the cluster has no API server address yet")?
                .to_string(),
            admin_kubeconfig: c.admin_kubeconfig(),
            pki_dir: c.pki_dir(),
        })
    }
}

/// Writes `kubelet-client-<name>.pem` (certificate and key, 0600) for every node into `dir`, where
/// the hollow nodes look first; a node without one falls back to TLS bootstrap.
async fn preissue(master: &MasterAccess, dir: &Path, count: usize) -> anyhow::Result<()> {
    let pki = master.pki_dir.clone();
    let ca_cert = std::fs::read_to_string(pki.join("ca.crt"))?;
    let ca_key = std::fs::read_to_string(pki.join("ca.key"))?;
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let ca = kubemark_core::pki::CertificateAuthority::load(
            &ca_cert,
            &ca_key,
            time::Duration::days(365),
        )?;
        std::fs::create_dir_all(&dir)?;
        for name in kubemark_hollow::HollowOptions::names(PREFIX, count) {
            let spec = kubemark_core::pki::CertSpec::client(
                kubemark_core::pki::users::node(&name),
                &[kubemark_core::pki::users::NODES_GROUP],
            );
            let pair = ca.issue(&spec)?;
            let path = dir.join(format!("kubelet-client-{name}.pem"));
            kubemark_core::pki::write_private(
                &path,
                &format!("{}{}", pair.cert_pem, pair.key_pem),
            )?;
        }
        Ok(())
    })
    .await??;
    Ok(())
}

/// The node name prefix of local clusters (upstream names hollow nodes after their pod,
/// `hollow-node-*`).
pub const PREFIX: &str = "hollow-node";

/// Starts the hollow-node process for `count` nodes, detached, logging under `dir`.
pub async fn spawn(
    master: &MasterAccess,
    dir: &Path,
    count: usize,
    extra_flags: &str,
    certs: NodeCerts,
) -> anyhow::Result<HollowProcess> {
    let client = client_from_kubeconfig(&master.admin_kubeconfig).await?;
    let token = BootstrapToken::generate();
    ensure_node_bootstrap(&client, &token, Duration::from_secs(24 * 3600))
        .await
        .context("installing the bootstrap token")?;
    std::fs::create_dir_all(dir)?;
    let ca = std::fs::read_to_string(master.pki_dir.join("ca.crt"))?;
    let bootstrap = dir.join("bootstrap.kubeconfig");
    token.kubeconfig(&master.server, &ca).write(&bootstrap)?;
    // Without the CA's key (a master kubemark did not create) nodes join by TLS bootstrap.
    let can_issue = master.pki_dir.join("ca.key").exists();
    if certs == NodeCerts::Preissued && can_issue {
        preissue(master, &dir.join("certs"), count).await?;
    }
    // kube-proxy's identity (system:kube-proxy), shared by every hollow proxy as in real clusters.
    // A master kubemark did not create gives none: its hollow nodes run without proxies.
    let pki = &master.pki_dir;
    let proxy = if pki.join("kube-proxy.crt").exists() {
        let path = dir.join("kube-proxy.kubeconfig");
        let proxy_cert = kubemark_core::pki::CertAndKey {
            cert_pem: std::fs::read_to_string(pki.join("kube-proxy.crt"))?,
            key_pem: std::fs::read_to_string(pki.join("kube-proxy.key"))?,
        };
        kubemark_core::pki::Kubeconfig {
            name: "kube-proxy".into(),
            server: master.server.clone(),
            ca_pem: ca.clone(),
            credentials: kubemark_core::pki::KubeconfigCredentials::ClientCert(proxy_cert),
        }
        .write(&path)?;
        Some(path)
    } else {
        tracing::warn!(
            "no kube-proxy identity for this master; hollow nodes run without kube-proxy"
        );
        None
    };
    // Each node serves its kubelet API on an address of its own in 127.0.0.0/8, in a /16 of
    // this cluster's (from its directory), with a serving certificate of the cluster's kubelet
    // serving CA when kubemark made the PKI.
    let serving_ca = [
        pki.join(kubemark_core::pki::file_names::KUBELET_SERVING_CA_CRT),
        pki.join(kubemark_core::pki::file_names::KUBELET_SERVING_CA_KEY),
    ];
    let serving_ca = serving_ca.iter().all(|p| p.exists()).then_some(serving_ca);
    let log = dir.join("hollow-node.log");
    let out = std::fs::File::create(&log)?;
    let exe = crate::hollow_binary::locate()?;
    // A profiler in front of the hollow process (e.g. `heaptrack -o /tmp/hollow`); the bench's
    // RSS and CPU then measure the wrapper's process, so numbers of such a run are not comparable.
    let wrapper: Vec<String> = std::env::var(HOLLOW_WRAPPER_ENV)
        .map(|w| w.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = std::process::Command::new(program);
            cmd.args(args).arg(exe);
            cmd
        }
        None => std::process::Command::new(exe),
    };
    cmd.args(["--morph", "kubelet", "--name", PREFIX])
        .arg(format!("--count={count}"))
        .arg(format!("--bootstrap-kubeconfig={}", bootstrap.display()))
        .arg(format!("--cert-dir={}", dir.join("certs").display()))
        .args(proxy.map(|p| format!("--proxy-kubeconfig={}", p.display())))
        .arg(format!("--node-ip={}", first_node_ip(dir)))
        .args(serving_ca.into_iter().flat_map(|[cert, key]| {
            [
                format!("--kubelet-serving-ca-cert={}", cert.display()),
                format!("--kubelet-serving-ca-key={}", key.display()),
            ]
        }))
        .args(extra_flags.split_whitespace())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("starting the hollow-node process")?;
    // The spawn returns while the kernel is still setting up the new program: for a moment its
    // command line reads empty, and liveness checks (which look for `dir` in it) took the
    // process for exited ("the hollow-node process exited; ... <empty log>", seen once in a
    // bench). Wait until it names `dir`.
    let marker = dir.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pid_is_ours(child.id(), &marker) {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the hollow-node process exited at once ({status}); last lines of {}: {}",
                log.display(),
                log_tail(&log)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the hollow-node process (pid {}) does not show its command line after 10 s",
                child.id()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(HollowProcess {
        pid: child.id(),
        count,
        prefix: PREFIX.into(),
        log,
        dir: dir.to_path_buf(),
    })
}

/// The first node's address: `127.N.0.1` with `N` in 16..=239 from a digest of the cluster's
/// directory, so clusters side by side on one machine rarely share a /16 (65,534 nodes each).
pub fn first_node_ip(dir: &Path) -> std::net::Ipv4Addr {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    std::net::Ipv4Addr::new(127, 16 + (hash % 224) as u8, 0, 1)
}

/// Environment variable: a command (with arguments) to run the hollow-node process under.
pub const HOLLOW_WRAPPER_ENV: &str = "KUBEMARK_HOLLOW_WRAPPER";

fn names(h: &HollowProcess) -> Vec<String> {
    h.node_names()
}

/// Whether the node's Ready condition is True.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Ready hollow nodes of `h`, by name.
pub async fn ready_nodes(
    client: &kube::Client,
    h: &HollowProcess,
) -> anyhow::Result<BTreeSet<String>> {
    ready_among(client, &names(h).into_iter().collect()).await
}

/// Which nodes are Ready, as one watch of all Nodes sees them (a LIST, then events). Waiting for
/// thousands of nodes by listing all of them every half second made the waiting itself an eighth
/// of the API server's CPU during a 5,000-node join (each LIST encodes every Node), slowing the
/// join it measured.
pub struct ReadyWatch {
    state: std::sync::Arc<std::sync::Mutex<ReadyState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ReadyState {
    ready: BTreeSet<String>,
    /// Nodes seen going from Ready to not Ready since the watch started.
    lost: BTreeSet<String>,
}

impl ReadyState {
    /// A Node seen (in a list or an event) with Ready `now`.
    fn saw(&mut self, name: String, now: bool) {
        if now {
            self.ready.insert(name);
        } else if self.ready.remove(&name) {
            self.lost.insert(name);
        }
    }

    /// A (re)list is complete: `listed` is every Node in it with its readiness. Ready nodes the
    /// list shows not Ready were lost in between; nodes it lacks were deleted.
    fn relisted(&mut self, listed: BTreeMap<String, bool>) {
        let before = std::mem::take(&mut self.ready);
        for (name, now) in listed {
            if now {
                self.ready.insert(name);
            } else if before.contains(&name) {
                self.lost.insert(name);
            }
        }
    }
}

impl ReadyWatch {
    /// Starts watching.
    pub fn start(client: &kube::Client) -> Self {
        use futures::StreamExt;
        use kube::runtime::WatchStreamExt;
        use kube::runtime::watcher::{self, Event};
        let state: std::sync::Arc<std::sync::Mutex<ReadyState>> = Default::default();
        let nodes: Api<Node> = Api::all(client.clone());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let events = watcher::watcher(nodes, watcher::Config::default()).default_backoff();
            let mut events = std::pin::pin!(events);
            // A (re)list replaces the set when it is complete.
            let mut listing = BTreeMap::new();
            while let Some(event) = events.next().await {
                let Ok(event) = event else { continue };
                let name = |n: &Node| n.metadata.name.clone().unwrap_or_default();
                let mut state = shared.lock().unwrap_or_else(|e| e.into_inner());
                match event {
                    Event::Init => listing.clear(),
                    Event::InitApply(n) => {
                        listing.insert(name(&n), is_ready(&n));
                    }
                    Event::InitDone => state.relisted(std::mem::take(&mut listing)),
                    Event::Apply(n) => state.saw(name(&n), is_ready(&n)),
                    Event::Delete(n) => {
                        state.ready.remove(&name(&n));
                    }
                }
            }
        });
        ReadyWatch { state, task }
    }

    /// Which of `names` are Ready now.
    pub fn ready_among(&self, names: &BTreeSet<String>) -> BTreeSet<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.ready.intersection(names).cloned().collect()
    }

    /// How many Ready nodes are named `<prefix>...`.
    pub fn count_with_prefix(&self, prefix: &str) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.ready.iter().filter(|n| n.starts_with(prefix)).count()
    }

    /// How many of `names` went from Ready to not Ready (NotReady or Unknown) at least once
    /// since the watch started.
    pub fn lost_among(&self, names: &[String]) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        names.iter().filter(|n| state.lost.contains(*n)).count()
    }
}

impl Drop for ReadyWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Which of `names` are Ready nodes (one LIST; to wait for many, see [`ReadyWatch`]).
pub async fn ready_among(
    client: &kube::Client,
    names: &BTreeSet<String>,
) -> anyhow::Result<BTreeSet<String>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|n| {
            is_ready(n)
                && n.metadata
                    .name
                    .as_ref()
                    .is_some_and(|name| names.contains(name))
        })
        .filter_map(|n| n.metadata.name)
        .collect())
}

fn alive(pid: u32, marker: &Path) -> bool {
    pid_is_ours(pid, &marker.display().to_string())
}

/// "hollow nodes Ready n/N" as a bar on a terminal, a line every 10 s otherwise.
pub struct ReadyProgress {
    bar: Option<ProgressBar>,
    total: usize,
    last: std::sync::Mutex<Instant>,
}

impl ReadyProgress {
    /// Starts showing progress towards `total` Ready nodes.
    pub fn new(total: usize) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner:.cyan} hollow nodes Ready {pos}/{len} [{bar:30.cyan/blue}] [{elapsed}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            Some(bar)
        } else {
            eprintln!("waiting for {total} hollow nodes to be Ready ...");
            None
        };
        Self {
            bar,
            total,
            last: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// `ready` nodes are Ready now.
    pub fn set(&self, ready: usize, start: Instant) {
        if let Some(bar) = &self.bar {
            bar.set_position(ready as u64);
            return;
        }
        let mut last = self.last.lock().expect("not poisoned");
        if last.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "{ready}/{} hollow nodes Ready after {}s",
                self.total,
                start.elapsed().as_secs()
            );
            *last = Instant::now();
        }
    }

    /// All Ready.
    pub fn finish(&self, n: usize, start: Instant) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        eprintln!(
            "{n} hollow nodes Ready in {:.1}s",
            start.elapsed().as_secs_f64()
        );
    }

    /// Gave up.
    pub fn abandon(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}

/// Waits until every node of `h` is Ready, with a progress bar; on timeout names the ones that
/// are not.
pub async fn wait_ready(
    master: &MasterAccess,
    h: &HollowProcess,
    timeout: Duration,
) -> anyhow::Result<()> {
    let client = client_from_kubeconfig(&master.admin_kubeconfig).await?;
    let progress = ReadyProgress::new(h.count);
    let start = Instant::now();
    let all: BTreeSet<String> = names(h).into_iter().collect();
    let watch = ReadyWatch::start(&client);
    loop {
        let ready = watch.ready_among(&all);
        progress.set(ready.len(), start);
        if ready.len() == h.count {
            progress.finish(h.count, start);
            return Ok(());
        }
        if !alive(h.pid, &h.dir) {
            progress.abandon();
            bail!(
                "the hollow-node process exited; last lines of {}: {}",
                h.log.display(),
                log_tail(&h.log)
            );
        }
        if start.elapsed() > timeout {
            progress.abandon();
            let missing: Vec<String> = names(h)
                .into_iter()
                .filter(|n| !ready.contains(n))
                .collect();
            let shown: Vec<&str> = missing.iter().take(10).map(String::as_str).collect();
            bail!(
                "{} of {} hollow nodes not Ready after {}s: {}{} (log: {}; the cluster keeps running, `kubemark stop` removes it)",
                missing.len(),
                h.count,
                timeout.as_secs(),
                shown.join(", "),
                if missing.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                },
                h.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Stops the process (core's [`HollowProcess::stop`]).
pub async fn stop(h: &HollowProcess) {
    h.stop().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_lost_when_seen_not_ready_after_ready_in_an_event_or_a_relist() {
        let mut s = ReadyState::default();
        s.relisted(BTreeMap::from([("a".into(), true), ("b".into(), false)]));
        // Never Ready, then not Ready again: not lost.
        s.saw("b".into(), false);
        s.saw("c".into(), true);
        s.saw("c".into(), false);
        s.saw("c".into(), true);
        // Lost in a watch gap, as the relist shows; "d" vanished (deleted), not lost.
        s.saw("d".into(), true);
        s.relisted(BTreeMap::from([
            ("a".into(), false),
            ("b".into(), true),
            ("c".into(), true),
        ]));
        let lost: Vec<&String> = s.lost.iter().collect();
        assert_eq!(lost, ["a", "c"]);
        let ready: Vec<&String> = s.ready.iter().collect();
        assert_eq!(ready, ["b", "c"]);
    }
}
