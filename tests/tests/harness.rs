//! A Rust harness running a scale test through the library, no `kubemark` process: the density
//! workload against the fixture cluster, measured (pod start-up, API responsiveness, etcd, the
//! control plane's resource usage) and judged by the SLOs.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kubemark_core::master::LocalState;
use kubemark_core::measurement::Target;
use kubemark_core::measurement::slo::SloThresholds;
use kubemark_core::provider::ClusterName;
use kubemark_core::workload::{Logged, TestOptions, WorkloadError, density};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_harness_runs_a_density_test_through_the_library() {
    let cluster = kubemark_tests::Cluster::with_nodes("harness", 3).await;
    let cp = &cluster.cp;
    let local = LocalState {
        cluster: ClusterName::new("harness").unwrap(),
        work_dir: cp.work_dir().to_path_buf(),
        server: cp.server_url(),
        admin_kubeconfig: cp.kubeconfig_path().to_path_buf(),
        ports: cp.ports(),
        processes: cp.pids(),
        keep_data: false,
    };
    let target = Target::new(cluster.client.clone())
        .with_processes(cp.pids())
        .with_local_master(local);
    let options = TestOptions {
        pods_per_node: 4,
        timeout: Duration::from_secs(120),
        ..TestOptions::default()
    };

    let run = density::run(&target, &options, &Logged).await.unwrap();
    assert_eq!((run.test.as_str(), run.nodes), ("density", 3));
    assert_eq!((run.pods_created, run.pods_measured), (12, 12));
    assert!(run.pod_startup_ms.p50 > 0.0 && run.pod_startup_ms.p50 <= run.pod_startup_ms.p99);
    let names: Vec<&str> = run
        .verdicts
        .iter()
        .map(|v| v.measurement.as_str())
        .collect();
    for name in [
        "PodStartupLatency p50",
        "PodStartupLatency p90",
        "PodStartupLatency p99",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    // The pod creates, whatever scope this API server version labels them with.
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("APIResponsiveness POST pods (")),
        "{names:?}"
    );
    assert_eq!(run.pass, run.verdicts.iter().all(|v| v.pass));
    let etcd = run.etcd.as_ref().unwrap();
    assert_eq!(etcd.source, "apiserver+etcd", "etcd scraped directly");
    assert!(etcd.db_size_bytes > 0.0 && etcd.wal_fsync_p99_seconds.is_some());
    let apiserver = run
        .components
        .iter()
        .find(|c| c.name == "kube-apiserver")
        .unwrap_or_else(|| panic!("kube-apiserver sampled: {:?}", run.components));
    assert!(apiserver.rss_mib.max > 10.0, "{:?}", apiserver.rss_mib);
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let left = namespaces
        .list(&ListParams::default().labels("kubemark.io/test=density"))
        .await
        .unwrap();
    assert!(left.items.is_empty(), "the run's namespace is deleted");

    // A threshold no pod meets: the run succeeds and its verdict says the SLO failed.
    let strict = TestOptions {
        pods_per_node: 1,
        slo: SloThresholds {
            pod_startup_seconds: 0.0,
            ..SloThresholds::default()
        },
        ..options.clone()
    };
    let run = density::run(&Target::new(cluster.client.clone()), &strict, &Logged)
        .await
        .unwrap();
    assert!(!run.pass);
    let startup = run
        .verdicts
        .iter()
        .find(|v| v.measurement == "PodStartupLatency p99")
        .unwrap();
    assert!(!startup.pass && startup.value > 0.0, "{startup:?}");
    assert!(
        run.components.is_empty(),
        "no processes named, none sampled"
    );

    // No schedulable node: an error, before anything is created.
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    for i in 0..3 {
        let cordon = serde_json::json!({ "spec": { "unschedulable": true } });
        nodes
            .patch(
                &format!("harness-{i}"),
                &PatchParams::default(),
                &Patch::Merge(&cordon),
            )
            .await
            .unwrap();
    }
    let e = density::run(&Target::new(cluster.client.clone()), &options, &Logged)
        .await
        .unwrap_err();
    assert!(matches!(e, WorkloadError::NoSchedulableNodes), "{e}");
    cluster.stop().await;
}
