//! kubemark embedded in another harness: `Cluster::start` with the local provider, hollow nodes
//! in the harness's own process, a workload, `stop` leaving nothing.

use std::sync::Arc;
use std::time::Duration;

use kubemark_core::cluster::{Cluster, ClusterSpec, MasterPlacement};
use kubemark_core::master::{BootstrapToken, LocalOptions, ensure_node_bootstrap};
use kubemark_core::provider::{ClusterName, LocalProvider};
use kubemark_hollow::{Credentials, HollowNodes, HollowOptions, NodeConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_harness_starts_a_cluster_runs_nodes_in_process_and_stops_it() {
    kubemark_tests::init_logging();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let options =
        LocalOptions::from_env().unwrap_or_else(|e| panic!("control-plane binaries: {e}"));
    let spec = ClusterSpec::new(
        ClusterName::new("embedded").unwrap(),
        &dir,
        MasterPlacement::Local(options),
    );
    let cluster = Cluster::start(Arc::new(LocalProvider), spec).await.unwrap();
    let client = cluster.client().await.unwrap();

    // The harness's own hollow nodes, joining by TLS bootstrap with the cluster's CA.
    let token = BootstrapToken::generate();
    ensure_node_bootstrap(&client, &token, Duration::from_secs(600))
        .await
        .unwrap();
    let ca = std::fs::read_to_string(cluster.pki_dir().join("ca.crt")).unwrap();
    let bootstrap = tmp.path().join("bootstrap.kubeconfig");
    token
        .kubeconfig(cluster.server().unwrap(), &ca)
        .write(&bootstrap)
        .unwrap();
    let nodes = HollowNodes::spawn(HollowOptions {
        names: HollowOptions::names("embedded", 3),
        credentials: Credentials::Bootstrap {
            bootstrap_kubeconfig: bootstrap,
            cert_dir: tmp.path().join("certs"),
        },
        config: NodeConfig::default(),
        join_concurrency: 4,
        kubelet: true,
        proxy: None,
        server: None,
    });
    kubemark_tests::wait_ready_nodes(&client, 3, Duration::from_secs(60)).await;

    // Restarting with the same spec while it runs is refused.
    let again = ClusterSpec::new(
        ClusterName::new("embedded").unwrap(),
        &dir,
        MasterPlacement::Local(LocalOptions::from_env().unwrap()),
    );
    let e = Cluster::start(Arc::new(LocalProvider), again)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already running"), "{e}");

    nodes.stop();
    let work_dir = cluster.local().unwrap().work_dir.clone();
    cluster.stop(Arc::new(LocalProvider)).await.unwrap();
    assert!(!dir.exists() && !work_dir.exists());
    assert!(kubemark_core::master::pids_mentioning(&work_dir.display().to_string()).is_empty());
}
