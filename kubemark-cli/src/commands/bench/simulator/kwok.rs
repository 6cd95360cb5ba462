//! KWOK (`sigs.k8s.io/kwok`, one controller for all nodes, as it is deployed) with the stages its
//! in-cluster manifest uses (node-initialize, node-heartbeat-with-lease, pod fast), leases of
//! 40 s like ours. KWOK does not register nodes: the bench creates them, with our nodes'
//! capacity, and times from the first create.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use kubemark_core::binaries::BinaryLocator;
use kubemark_core::master::LocalControlPlane;

use super::super::phase::ready;
use super::super::process::Children;
use super::common::{Joined, Simulator};
use crate::cli::BenchArgs;
use crate::commands::nodes::ReadyWatch;

/// KWOK's controller and the nodes the bench created for it.
#[derive(Default)]
pub struct Kwok {
    child: Children,
    work: Option<tempfile::TempDir>,
}

/// KWOK's binary and its stages.
fn files(args: &BenchArgs) -> (PathBuf, PathBuf) {
    let locator = BinaryLocator::from_env().with_bin_dir(args.bin_dir.clone());
    (
        locator.cache_dir().join("kwok"),
        locator.cache_dir().join("kwok-stages.yaml"),
    )
}

impl Simulator for Kwok {
    fn implementation(&self) -> &'static str {
        "kwok"
    }

    fn announce(&self, n: usize) -> String {
        format!("measuring {n} kwok nodes (one controller) ...")
    }

    fn check(&self, args: &BenchArgs) -> anyhow::Result<()> {
        let (bin, stages) = files(args);
        anyhow::ensure!(
            bin.is_file() && stages.is_file(),
            "kwok or its stages not found in {}; build them with scripts/build-control-plane.sh --with-peers",
            bin.parent().unwrap_or(Path::new("")).display()
        );
        Ok(())
    }

    async fn join(
        &mut self,
        cp: &LocalControlPlane,
        n: usize,
        args: &BenchArgs,
    ) -> anyhow::Result<Joined> {
        let (bin, stages) = files(args);
        let work = self.work.insert(tempfile::tempdir()?).path().to_path_buf();
        let kubeconfig = work.join("kwok.kubeconfig");
        kwok_identity(cp, &kubeconfig).await?;
        let log = std::fs::File::create(work.join("kwok.log"))?;
        let mut cmd = std::process::Command::new(&bin);
        cmd.arg("-c")
            .arg(&stages)
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg("--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake")
            .arg("--node-lease-duration-seconds=40")
            .arg("--server-address=")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        self.child.0.push(
            cmd.spawn()
                .with_context(|| format!("starting {}", bin.display()))?,
        );
        let pid = self.child.0[0].id();
        let client = cp.client().await?;
        let watch = ReadyWatch::start(&client);
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
        let start = Instant::now();
        let creates = futures::stream::iter(0..n).map(|i| {
            let nodes = nodes.clone();
            async move {
                let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
                    "metadata": { "name": format!("kwok-{i}"),
                        "annotations": { "kwok.x-k8s.io/node": "fake" },
                        "labels": { "type": "kwok", "kubernetes.io/hostname": format!("kwok-{i}") } },
                    "status": {
                        "capacity": { "cpu": "1", "memory": "4026531840", "pods": "110" },
                        "allocatable": { "cpu": "1", "memory": "4026531840", "pods": "110" } },
                }))?;
                nodes.create(&Default::default(), &node).await?;
                anyhow::Ok(())
            }
        });
        let results: Vec<anyhow::Result<()>> = creates.buffer_unordered(32).collect().await;
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        let timeout = Duration::from_secs(args.timeout);
        ready::wait_prefix(&watch, "kwok-", n, timeout, "kwok nodes").await?;
        let seconds_to_ready = start.elapsed().as_secs_f64();
        eprintln!("{n} kwok nodes Ready in {seconds_to_ready:.1}s");
        Ok(Joined {
            pids: vec![pid],
            seconds_to_ready,
        })
    }

    async fn stop(&mut self) {
        drop(std::mem::take(&mut self.child));
        self.work = None;
    }
}

/// KWOK's user: in the nodes' group, so that API Priority and Fairness classifies its requests
/// as it classifies kubelets' (lease renewals and node status at `node-high`, the rest at
/// `system`). With the admin's identity (group `system:masters`, APF-exempt: never queued,
/// never rejected) KWOK's renewals skipped the queues our nodes' wait in. Not being named
/// `system:node:<name>`, it is authorized by RBAC, not the Node authorizer.
const KWOK_USER: &str = "kubemark-bench-kwok";

/// Writes a kubeconfig for [`KWOK_USER`] (a client certificate from the cluster CA; the file
/// 0600 in the bench's temporary directory) and binds the user to `cluster-admin`.
async fn kwok_identity(cp: &LocalControlPlane, kubeconfig: &Path) -> anyhow::Result<()> {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    use kubemark_core::pki::{CertSpec, users};
    let cert = cp
        .pki()
        .ca
        .issue(&CertSpec::client(KWOK_USER, &[users::NODES_GROUP]))?;
    cp.kubeconfig_for(KWOK_USER, cert).write(kubeconfig)?;
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": KWOK_USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KWOK_USER}],
    }))?;
    kube::Api::<ClusterRoleBinding>::all(cp.client().await?)
        .create(&Default::default(), &binding)
        .await
        .context("binding KWOK's user to cluster-admin")?;
    Ok(())
}
