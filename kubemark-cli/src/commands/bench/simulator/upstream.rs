//! Upstream's hollow node (`cmd/kubemark`) as its pods run it: per node a hollow kubelet process,
//! with its own node certificate from the cluster CA (upstream would share an admin kubeconfig;
//! per-node identity keeps the Node authorizer on for both), and a hollow proxy process as
//! `system:kube-proxy`, the identity every hollow proxy of ours shares too. Without the proxies
//! upstream's side would lack the watches, memory and CPU that ours carries for its proxies.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use kubemark_core::binaries::BinaryLocator;
use kubemark_core::master::LocalControlPlane;

use super::super::phase::ready;
use super::super::process::Children;
use super::common::{Joined, Simulator, client_limits};
use crate::cli::BenchArgs;
use crate::commands::nodes::ReadyWatch;

/// Upstream's hollow nodes, two processes per node.
#[derive(Default)]
pub struct Upstream {
    children: Children,
    work: Option<tempfile::TempDir>,
    /// Upstream's leftovers already there before the measurement (not ours to remove).
    leftovers_before: Option<BTreeSet<PathBuf>>,
}

fn binary(args: &BenchArgs) -> PathBuf {
    let locator = BinaryLocator::from_env().with_bin_dir(args.bin_dir.clone());
    args.upstream_bin
        .clone()
        .unwrap_or_else(|| locator.cache_dir().join("kubemark"))
}

impl Simulator for Upstream {
    fn implementation(&self) -> &'static str {
        "upstream"
    }

    fn announce(&self, n: usize) -> String {
        format!("measuring {n} upstream hollow nodes (a kubelet and a proxy process each) ...")
    }

    fn check(&self, args: &BenchArgs) -> anyhow::Result<()> {
        let bin = binary(args);
        anyhow::ensure!(
            bin.is_file(),
            "upstream hollow node {} not found; build it with scripts/build-control-plane.sh --with-peers",
            bin.display()
        );
        Ok(())
    }

    async fn join(
        &mut self,
        cp: &LocalControlPlane,
        n: usize,
        args: &BenchArgs,
    ) -> anyhow::Result<Joined> {
        let bin = binary(args);
        let work = self.work.insert(tempfile::tempdir()?).path().to_path_buf();
        self.leftovers_before = Some(upstream_leftovers(UPSTREAM_LEFTOVERS_DIR.as_ref()));
        let start = Instant::now();
        let proxy_kubeconfig = work.join("kube-proxy.kubeconfig");
        cp.kubeconfig_for("kube-proxy", cp.pki().kube_proxy.clone())
            .write(&proxy_kubeconfig)?;
        for i in 0..n {
            let name = format!("upstream-{i}");
            let kubeconfig = work.join(format!("{name}.kubeconfig"));
            cp.kubeconfig_for(&name, cp.pki().issue_kubelet_client(&name)?)
                .write(&kubeconfig)?;
            let kubelet_flags = [
                format!("--kubelet-port={}", 20000 + 2 * i),
                format!("--kubelet-read-only-port={}", 20001 + 2 * i),
                "--use-host-image-service=false".to_string(),
            ];
            // Its fake proxier touches no iptables (`--use-real-proxier` has no effect).
            for (morph, kubeconfig, extra) in [
                ("kubelet", &kubeconfig, &kubelet_flags[..]),
                ("proxy", &proxy_kubeconfig, &[]),
            ] {
                let log = work.join(format!("{name}.{morph}.log"));
                let log = std::fs::File::create(log)?;
                let mut cmd = std::process::Command::new(&bin);
                cmd.arg(format!("--morph={morph}"))
                    .arg(format!("--name={name}"))
                    .arg(format!("--kubeconfig={}", kubeconfig.display()))
                    .args(extra)
                    .args(client_limits(args).split_whitespace())
                    .stdin(std::process::Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log);
                std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
                self.children.0.push(
                    cmd.spawn()
                        .with_context(|| format!("starting {}", bin.display()))?,
                );
            }
        }
        let client = cp.client().await?;
        let watch = ReadyWatch::start(&client);
        let timeout = Duration::from_secs(args.timeout);
        ready::wait_prefix(&watch, "upstream-", n, timeout, "upstream hollow nodes").await?;
        let seconds_to_ready = start.elapsed().as_secs_f64();
        eprintln!("{n} upstream hollow nodes Ready in {seconds_to_ready:.1}s");
        Ok(Joined {
            pids: self.children.0.iter().map(|c| c.id()).collect(),
            seconds_to_ready,
        })
    }

    async fn stop(&mut self) {
        drop(std::mem::take(&mut self.children));
        if let Some(before) = self.leftovers_before.take() {
            remove_upstream_leftovers(UPSTREAM_LEFTOVERS_DIR.as_ref(), &before);
        }
        self.work = None;
    }
}

/// inotify instances one upstream hollow-node process opens (its kubelet's certificate, config
/// and plugin watches; 2 each, counted at 100 processes with the limit raised).
const UPSTREAM_INOTIFY_INSTANCES: usize = 2;

/// Fails when the per-user inotify limit cannot serve `processes` upstream hollow nodes: past
/// it their watches fail with a logged error only, and the processes run on degraded (seen with
/// the default limit of 128 and 100 processes: a quarter of them had none, their pods took 3x
/// as long to run, and the controller-manager, short of its own, lost its leader lease).
pub fn check_inotify_instances(processes: usize) -> anyhow::Result<()> {
    let path = "/proc/sys/fs/inotify/max_user_instances";
    let Some(limit) = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<usize>().ok())
    else {
        return Ok(());
    };
    // The control plane and whatever else runs as this user hold some too.
    let needed = processes * UPSTREAM_INOTIFY_INSTANCES + 64;
    anyhow::ensure!(
        limit >= needed,
        "{processes} upstream hollow-node processes need about {needed} inotify instances but {path} is {limit}; with too few they run degraded and their numbers mean little: raise it (sudo sysctl -w fs.inotify.max_user_instances={})",
        needed.checked_next_power_of_two().unwrap_or(needed)
    );
    Ok(())
}

/// Where upstream's hollow kubelet leaves its files when killed, whatever TMPDIR says (both
/// paths are fixed in the Go code): its root directory `hollow-kubelet.<random>` (~100 KiB;
/// k8s.io/kubernetes test/utils) and its fake container runtime's socket
/// `kubelet_remote_<random>.sock` (k8s.io/cri-client).
const UPSTREAM_LEFTOVERS_DIR: &str = "/tmp";

fn upstream_leftovers(dir: &Path) -> BTreeSet<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Default::default();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("hollow-kubelet.")
                || (name.starts_with("kubelet_remote_") && name.ends_with(".sock"))
        })
        .map(|e| e.path())
        .collect()
}

/// Removes what upstream's hollow kubelets left in `dir` since `before`, once they are gone:
/// sockets only when nobody listens on them any more. Two upstream benches cannot share a
/// machine anyway (their kubelet ports are fixed per node index), so what appeared during this
/// one is this one's.
fn remove_upstream_leftovers(dir: &Path, before: &BTreeSet<PathBuf>) -> usize {
    let mut removed = 0;
    for path in upstream_leftovers(dir).difference(before) {
        let gone = if path.extension().is_some_and(|e| e == "sock") {
            let stale = std::os::unix::net::UnixStream::connect(path)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
            stale && std::fs::remove_file(path).is_ok()
        } else {
            std::fs::remove_dir_all(path).is_ok()
        };
        removed += usize::from(gone);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_inotify_instances_for_upstream_is_refused_up_front() {
        // No machine allows 4 billion instances per user (the kernel's limit is an int).
        let e = check_inotify_instances(2_000_000_000)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fs/inotify/max_user_instances is") && e.contains("sysctl -w"),
            "{e}"
        );
        assert!(check_inotify_instances(0).is_ok());
    }

    #[test]
    fn only_new_upstream_leftovers_are_removed_and_sockets_only_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        // A socket file whose listener is gone, as a killed process leaves it.
        let stale = |name: &str| drop(std::os::unix::net::UnixListener::bind(path(name)).unwrap());
        let root = |name: &str| std::fs::create_dir_all(path(name).join("checkpoints")).unwrap();
        stale("kubelet_remote_1.sock");
        root("hollow-kubelet.1");
        let before = upstream_leftovers(dir.path());
        stale("kubelet_remote_2.sock");
        root("hollow-kubelet.2");
        let _live = std::os::unix::net::UnixListener::bind(path("kubelet_remote_3.sock")).unwrap();
        stale("other.sock");
        root("other");

        assert_eq!(remove_upstream_leftovers(dir.path(), &before), 2);
        assert!(path("kubelet_remote_1.sock").exists(), "older than the run");
        assert!(path("hollow-kubelet.1").exists(), "older than the run");
        assert!(!path("kubelet_remote_2.sock").exists(), "new and stale");
        assert!(!path("hollow-kubelet.2").exists(), "new");
        assert!(path("kubelet_remote_3.sock").exists(), "someone listens");
        assert!(path("other.sock").exists(), "not upstream's");
        assert!(path("other").exists(), "not upstream's");
    }
}
