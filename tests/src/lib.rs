//! Shared helpers of the workspace-level integration tests (in `tests/tests/`), which run against
//! a real control plane built by `scripts/build-control-plane.sh`.

mod cluster;
pub mod gce;
pub mod metrics_server;
pub mod modules;
pub mod moto;
pub mod netns;
pub mod registry;
pub mod runner;
pub mod sshd;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

pub use cluster::{Cluster, ClusterBuilder};

/// A finished command's stdout and stderr as one string, for assertions and failure messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The workspace's `hollow-node` binary, built if stale, in the target directory of the running
/// test, beside the `kubemark` under test (where `kubemark` looks first).
///
/// Cargo builds the binaries of a test's own package only, and `hollow-node` is kubemark-hollow's:
/// `cargo test --test cli` alone would run a stale one, or none. So this runs `cargo build` for
/// it once per test process (cargo holds no lock while tests run), a no-op when it is fresh.
pub fn hollow_node() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_hollow_node).clone()
}

fn build_hollow_node() -> PathBuf {
    // The test runs as <target>/<profile>/deps/<test>-<hash>.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("a target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(p) => p,
        None => panic!("no profile in {}", profile_dir.display()),
    };
    let test = exe
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit_once('-'))
        .map(|(name, _)| name.to_string())
        .expect("the test binary is named <test>-<hash>");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    // With the running test selected too: features resolve as in `cargo test` (dev-dependencies
    // included), so nothing is rebuilt with other features.
    let status = std::process::Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()))
        .args([
            "build",
            "--workspace",
            "--bin",
            "hollow-node",
            "--test",
            &test,
        ])
        .args(["--profile", profile, "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "cargo build of hollow-node failed (its output is above)"
    );
    let bin = profile_dir.join("hollow-node");
    assert!(bin.is_file(), "cargo built no {}", bin.display());
    bin
}

/// Test logs on stderr (shown for failing tests), filtered by `KUBEMARK_LOG` (default: warnings).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBEMARK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube_client=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A /16 of 127.0.0.0/8 of this test's own (from `seed`), first address `127.N.0.1`.
pub fn loopback_range(seed: &str) -> std::net::Ipv4Addr {
    let n = seed
        .bytes()
        .chain(std::process::id().to_le_bytes())
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    std::net::Ipv4Addr::new(127, 16 + (n % 224) as u8, 0, 1)
}

/// A Deployment of `replicas` pods labelled `app=<name>` in `default`.
pub fn deployment(name: &str, replicas: usize) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": "default" },
        "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": name } }, "template": {
            "metadata": { "labels": { "app": name } },
            "spec": { "tolerations": [{ "operator": "Exists", "effect": "NoExecute" }],
                      "containers": [{ "name": "c", "image": "nginx:1.27" }] } } },
    })
}

/// Polls `check` every 250 ms until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Open WATCH requests on `resource`, from the API server's `apiserver_longrunning_requests`.
pub async fn open_watches(client: &kube::Client, resource: &str) -> f64 {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("apiserver_longrunning_requests{")
                && l.contains("verb=\"WATCH\"")
                && l.contains(&format!("resource=\"{resource}\""))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Requests the API server has served for (verb, resource, subresource), any code, from its
/// `apiserver_request_total`.
pub async fn requests_served(
    client: &kube::Client,
    verb: &str,
    resource: &str,
    subresource: &str,
) -> f64 {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("apiserver_request_total{")
                && l.contains(&format!("verb=\"{verb}\""))
                && l.contains(&format!("resource=\"{resource}\""))
                && l.contains(&format!("subresource=\"{subresource}\""))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Where a test runs the `kubemark` binary: its state directory under `base` (left for
/// kubemark to create) and a working directory under `base`, created (kubemark writes the
/// cluster's kubeconfig there).
pub fn state_and_cwd(base: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (state, cwd) = (base.join("state"), base.join("cwd"));
    std::fs::create_dir_all(&cwd).unwrap();
    (state, cwd)
}

/// Whether a node's Ready condition is True.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits up to 60 s until pod `name` of `pods` is Running.
pub async fn running(pods: &Api<k8s_openapi::api::core::v1::Pod>, name: &str) {
    eventually(
        &format!("pod {name} Running"),
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            async move {
                let p = pods.get(name).await.ok()?;
                (p.status?.phase.as_deref() == Some("Running")).then_some(())
            }
        },
    )
    .await;
}

/// Waits until `n` nodes are Ready.
pub async fn wait_ready_nodes(client: &kube::Client, n: usize, timeout: Duration) -> Vec<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    eventually(&format!("{n} Ready nodes"), timeout, || {
        let nodes = nodes.clone();
        async move {
            let list = nodes.list(&ListParams::default()).await.ok()?;
            let ready: Vec<Node> = list.items.into_iter().filter(is_ready).collect();
            (ready.len() >= n).then_some(ready)
        }
    })
    .await
}

/// kubectl without blocking the runtime: the hollow nodes run on it too.
pub async fn kubectl(
    cp: &kubemark_core::master::LocalControlPlane,
    args: &[&str],
) -> std::process::Output {
    tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .args(args)
        .output()
        .await
        .expect("kubectl is installed")
}

/// `kubectl apply` of one manifest; panics when it fails.
pub async fn apply(cp: &kubemark_core::master::LocalControlPlane, manifest: serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let out = kubectl(cp, &["apply", "-f", path.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
