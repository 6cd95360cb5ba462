//! A real metrics-server (built from the Go module proxy into the control plane's cache by
//! `scripts/build-control-plane.sh --metrics-server`), run beside a local control plane and
//! registered through the aggregation layer, as in a cluster: `kubectl top` and the
//! HorizontalPodAutoscaler controller reach it through the API server.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kubemark_core::master::LocalControlPlane;

/// A running metrics-server; killed on drop.
pub struct MetricsServer {
    child: Child,
    /// Its log.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let path = kubemark_core::binaries::default_cache_root()
        .join("bin")
        .join(kubemark_core::binaries::KUBERNETES_VERSION)
        .join("metrics-server");
    assert!(
        path.exists(),
        "{} is missing: scripts/test.sh builds it (scripts/build-control-plane.sh --metrics-server)",
        path.display()
    );
    path
}

impl MetricsServer {
    /// Starts metrics-server on `ip` (an address the API server may proxy to: not loopback)
    /// and registers it as `v1beta1.metrics.k8s.io`.
    pub async fn start(cp: &LocalControlPlane, ip: Ipv4Addr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind((ip, 0)).unwrap();
            l.local_addr().unwrap().port()
        };
        let log = dir.path().join("metrics-server.log");
        let kubeconfig = cp.kubeconfig_path().display().to_string();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, cp.pki().kubelet_serving_ca.cert_pem()).unwrap();
        let child = Command::new(binary())
            .args([
                format!("--kubeconfig={kubeconfig}"),
                format!("--authentication-kubeconfig={kubeconfig}"),
                format!("--authorization-kubeconfig={kubeconfig}"),
                format!("--bind-address={ip}"),
                format!("--secure-port={port}"),
                format!("--cert-dir={}", dir.path().display()),
                format!("--kubelet-certificate-authority={}", ca.display()),
                "--kubelet-preferred-address-types=InternalIP".into(),
                "--kubelet-use-node-status-port".into(),
                "--metric-resolution=10s".into(),
                "--kubelet-request-timeout=5s".into(),
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("starting metrics-server");
        // The aggregation layer reaches it at its endpoint (--enable-aggregator-routing).
        let manifests = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": [
            { "apiVersion": "v1", "kind": "Service",
              "metadata": { "name": "metrics-server", "namespace": "kube-system" },
              "spec": { "ports": [{ "name": "https", "port": 443, "targetPort": port }] } },
            { "apiVersion": "v1", "kind": "Endpoints",
              "metadata": { "name": "metrics-server", "namespace": "kube-system" },
              "subsets": [{ "addresses": [{ "ip": ip.to_string() }],
                            "ports": [{ "name": "https", "port": port }] }] },
            { "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
              "metadata": { "name": "v1beta1.metrics.k8s.io" },
              "spec": { "group": "metrics.k8s.io", "version": "v1beta1",
                        "service": { "name": "metrics-server", "namespace": "kube-system", "port": 443 },
                        "insecureSkipTLSVerify": true,
                        "groupPriorityMinimum": 100, "versionPriority": 100 } },
        ]});
        crate::apply(cp, manifests).await;
        MetricsServer {
            child,
            log,
            _dir: dir,
        }
    }

    /// The last lines of its log (stderr, where klog writes).
    pub fn log_tail(&self) -> String {
        let stderr = self.log.with_file_name("stderr.log");
        let text = std::fs::read_to_string(stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits up to `timeout` for `kubectl top ARGS` to succeed; its output.
    pub async fn top(&self, cp: &LocalControlPlane, args: &[&str], timeout: Duration) -> String {
        let start = std::time::Instant::now();
        loop {
            let mut all = vec!["top"];
            all.extend_from_slice(args);
            let out = crate::kubectl(cp, &all).await;
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                start.elapsed() < timeout,
                "kubectl top {} did not answer in {timeout:?}: {}\nmetrics-server log:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr),
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
