//! A master bootstrapped over real SSH (Debian's sshd on a loopback port), with this machine as
//! the master host: install, readiness, a crashed component restarted by the supervisor,
//! re-bootstrap, teardown leaving nothing, and clear errors for bad targets.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kubemark_core::bootstrap::{BootstrapError, SshSession};
use kubemark_core::master::{
    LocalOptions, MasterPorts, RemoteMaster, RemoteMasterSpec, apiserver_ready,
};
use kubemark_core::pki::{ClusterPki, PkiOptions};
use kubemark_core::provider::ClusterName;
use kubemark_tests::sshd::Sshd;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A spec whose "/etc/srv/kubernetes", "/var/lib/kubemark" and "/var/log/kubemark" live under
/// `root`, with free loopback ports.
fn spec(root: &Path, cluster: &str) -> RemoteMasterSpec {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let mut spec = RemoteMasterSpec::new(ClusterName::new(cluster).unwrap(), lo);
    spec.config_dir = root.join("etc-srv-kubernetes");
    spec.data_dir = root.join("var-lib-kubemark");
    spec.log_dir = root.join("var-log-kubemark");
    spec.network.bind_address = lo;
    spec.network.ports = MasterPorts {
        etcd_client: free_port(),
        etcd_peer: free_port(),
        apiserver: free_port(),
        controller_manager: free_port(),
        scheduler: free_port(),
    };
    spec.ready_timeout = Duration::from_secs(120);
    spec
}

fn pki(spec: &RemoteMasterSpec) -> ClusterPki {
    let mut o = PkiOptions::new(spec.cluster.as_str(), vec![spec.network.advertise_address]);
    o.service_cidr = spec.network.service_cidr.clone();
    ClusterPki::generate(o).unwrap()
}

/// PIDs of live processes whose command line mentions `marker`.
fn processes_mentioning(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !cmdline.is_empty() && String::from_utf8_lossy(&cmdline).contains(marker)
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_over_ssh_supervises_and_teardown_leaves_nothing() {
    kubemark_tests::init_logging();
    let sshd = Sshd::start();
    let binaries = LocalOptions::from_env()
        .unwrap_or_else(|e| panic!("control-plane binaries: {e}"))
        .binaries;
    let root = tempfile::Builder::new()
        .prefix("kubemark-remote-")
        .tempdir()
        .unwrap();
    let marker = root.path().display().to_string();
    let spec = spec(root.path(), "remote-test");
    let ssh = SshSession::connect(&sshd.target()).await.unwrap();
    let master = RemoteMaster::new(&ssh, spec.clone()).unwrap();
    let pki1 = pki(&spec);
    let client = master.bootstrap(&pki1, &binaries).await.unwrap();
    assert!(apiserver_ready(&client).await);

    // A real client with the admin kubeconfig, over the network.
    let kubeconfig = root.path().join("admin.kubeconfig");
    master
        .kubeconfig(&pki1, "admin", pki1.admin.clone())
        .write(&kubeconfig)
        .unwrap();
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "ns", "kube-system", "-o", "name"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace/kube-system",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What landed on the master: secrets 0600 in 0700 directories, an env file, logs.
    let pki_dir = spec.config_dir.join("pki");
    assert_eq!(mode(&spec.config_dir), 0o700);
    assert_eq!(mode(&pki_dir), 0o700);
    for f in ["ca.key", "apiserver.key", "etcd-ca.key", "sa.key"] {
        let p = pki_dir.join(f);
        assert!(p.exists(), "{f} not uploaded");
        assert_eq!(mode(&p), 0o600, "{f}");
    }
    let env = std::fs::read_to_string(spec.config_dir.join("master.env")).unwrap();
    assert!(env.contains("KUBE_APISERVER_ARGS='--etcd-servers=https://127.0.0.1:"));
    assert_eq!(mode(&spec.config_dir.join("master.env")), 0o600);

    // Every component runs under its supervisor.
    let status = master.status().await.unwrap();
    assert_eq!(status.len(), 4);
    assert!(
        status
            .iter()
            .all(|s| s.pid.is_some() && s.supervisor_pid.is_some()),
        "{status:?}"
    );

    // A crashed component comes back (upstream's stay dead).
    let scheduler = status.iter().find(|s| s.name == "kube-scheduler").unwrap();
    let old = scheduler.pid.unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let start = Instant::now();
    loop {
        let s = master.status().await.unwrap();
        let sched = s.iter().find(|s| s.name == "kube-scheduler").unwrap();
        if sched.restarts >= 1 && sched.pid.is_some_and(|p| p != old) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "kube-scheduler was not restarted: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = std::fs::read_to_string(spec.log_dir.join("kube-scheduler.log")).unwrap();
    assert!(log.contains("kubemark-supervise: kube-scheduler exited"));

    // Bootstrapping again (a re-run after a crash) replaces the master with one that matches the
    // new PKI: the old admin credentials no longer work, the new ones do.
    let pki2 = pki(&spec);
    let client2 = master.bootstrap(&pki2, &binaries).await.unwrap();
    assert!(apiserver_ready(&client2).await);
    assert!(!apiserver_ready(&client).await, "old CA still trusted");

    // Resource use over SSH, for test runs against remote masters.
    let usage = master.usage().await.unwrap();
    assert_eq!(usage.components.len(), 4, "{usage:?}");
    assert!(usage.clock_ticks > 0);
    assert!(
        usage
            .components
            .iter()
            .all(|(_, ticks, rss)| *rss > 1024 * 1024 && *ticks > 0)
    );

    master.teardown().await.unwrap();
    for d in [&spec.config_dir, &spec.data_dir, &spec.log_dir] {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    assert_eq!(processes_mentioning(&marker), Vec::<u32>::new());
    // Teardown is idempotent.
    master.teardown().await.unwrap();
    ssh.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_targets_and_foreign_directories_fail_with_one_clear_line() {
    kubemark_tests::init_logging();
    let sshd = Sshd::start();

    let mut wrong_key = sshd.target();
    let other: PathBuf = sshd.dir().join("other_key");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(ok.success());
    wrong_key.key = other;
    let mut messages = Vec::new();
    let e = SshSession::connect(&wrong_key)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("Permission denied"), "{e}");
    messages.push(e);

    let mut unknown_host = sshd.target();
    let empty = sshd.dir().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    unknown_host.known_hosts_file = Some(empty);
    let e = SshSession::connect(&unknown_host)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("Host key verification failed"), "{e}");
    messages.push(e);

    let mut unreachable = sshd.target();
    unreachable.port = free_port();
    let e = SshSession::connect(&unreachable)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("Connection refused"), "{e}");
    messages.push(e);

    let mut missing_key = sshd.target();
    missing_key.key = sshd.dir().join("no-such-key");
    let e = SshSession::connect(&missing_key).await.unwrap_err();
    assert!(
        matches!(e, BootstrapError::Connect { .. }) && e.to_string().contains("no-such-key"),
        "{e}"
    );
    messages.push(e.to_string());
    for m in &messages {
        assert_eq!(m.lines().count(), 1, "one line: {m}");
        assert!(m.contains("127.0.0.1"), "names the host: {m}");
    }

    // Directories of another cluster, or ones kubemark did not make, are refused untouched.
    let ssh = SshSession::connect(&sshd.target()).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let spec_a = spec(root.path(), "cluster-a");
    std::fs::create_dir_all(&spec_a.config_dir).unwrap();
    std::fs::write(spec_a.config_dir.join(".kubemark-cluster"), "cluster-b\n").unwrap();
    let master = RemoteMaster::new(&ssh, spec_a.clone()).unwrap();
    let binaries = LocalOptions::from_env().unwrap().binaries;
    let e = match master.bootstrap(&pki(&spec_a), &binaries).await {
        Ok(_) => panic!("bootstrapped into another cluster's directory"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("belongs to kubemark cluster cluster-b"), "{e}");
    master.teardown().await.unwrap();
    assert!(
        spec_a.config_dir.join(".kubemark-cluster").exists(),
        "teardown must not remove another cluster's directory"
    );

    let spec_c = spec(&root.path().join("c"), "cluster-c");
    std::fs::create_dir_all(&spec_c.data_dir).unwrap();
    std::fs::write(spec_c.data_dir.join("precious"), "user data").unwrap();
    let master_c = RemoteMaster::new(&ssh, spec_c.clone()).unwrap();
    let e = match master_c.bootstrap(&pki(&spec_c), &binaries).await {
        Ok(_) => panic!("bootstrapped into a directory kubemark did not create"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("was not created by kubemark"), "{e}");
    assert!(spec_c.data_dir.join("precious").exists());

    let mut spec_bad = spec(root.path(), "cluster-d");
    spec_bad.config_dir = PathBuf::from("/tmp/has space");
    let e = RemoteMaster::new(&ssh, spec_bad).unwrap_err().to_string();
    assert!(e.contains("must be absolute"), "{e}");
    ssh.close().await.unwrap();
}
