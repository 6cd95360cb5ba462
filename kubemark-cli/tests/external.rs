//! Hollow nodes as pods on an external cluster: a second real control plane plays the external
//! cluster, and the test runner (`kubemark_tests::runner`, test scaffolding) plays its kubelet by
//! running each hollow-node pod's command as a local process.

use std::path::Path;
use std::process::Output;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kubemark_tests::runner::Runner;

async fn kubemark(state: &Path, cwd: &Path, args: &[&str]) -> Output {
    // Beside kubemark, where it looks for it: start runs nodes with it, image packs it.
    kubemark_tests::hollow_node();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kubemark"))
        .args(args)
        .env("KUBEMARK_STATE_DIR", state)
        .env_remove("CLOUD_PROVIDER")
        .env_remove("NUM_NODES")
        .env_remove("KUBEMARK_NUM_NODES")
        .current_dir(cwd)
        .output()
        .await
        .expect("kubemark runs")
}

use kubemark_tests::output_text as text;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hollow_nodes_run_as_pods_on_an_external_cluster_and_stop_removes_them() {
    let external = kubemark_tests::Cluster::start().await;
    let ext_client = external.client.clone();
    let ext_kubeconfig = external.cp.kubeconfig_path().display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let (state, cwd) = kubemark_tests::state_and_cwd(tmp.path());

    // Without a kubelet on the external cluster the pods stay Pending: the timeout names them
    // and says why; stop removes the namespace.
    let out = kubemark(
        &state,
        &cwd,
        &[
            "start",
            "--nodes",
            "2",
            "--nodes-per-pod",
            "1",
            "--timeout",
            "5",
            "--external-kubeconfig",
            &ext_kubeconfig,
            "--image",
            "kubemark.invalid/kubemark:test",
        ],
    )
    .await;
    assert!(!out.status.success(), "{}", text(&out));
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(e.contains("external pods not Running"), "{e}");
    assert!(
        e.contains("hollow-node-0 (Pending") && e.contains("Unschedulable"),
        "{e}"
    );
    let out = kubemark(&state, &cwd, &["stop"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let namespaces: Api<Namespace> = Api::all(ext_client.clone());
    assert!(
        namespaces.get_opt("kubemark").await.unwrap().is_none(),
        "stop removes the namespace"
    );

    // With the runner as the external cluster's kubelet: 4 hollow nodes in 2 pods.
    let runner = Runner::start(
        ext_client.clone(),
        "external-node-0",
        kubemark_tests::hollow_node(),
    )
    .await;
    let out = kubemark(
        &state,
        &cwd,
        &[
            "start",
            "--nodes",
            "4",
            "--nodes-per-pod",
            "2",
            "--timeout",
            "120",
            "--external-kubeconfig",
            &ext_kubeconfig,
            "--image",
            "kubemark.invalid/kubemark:test",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "start: {}\nrunner log: {}",
        text(&out),
        std::fs::read_to_string(runner.log("hollow-node-0")).unwrap_or_default()
    );
    assert!(
        text(&out).contains("4 hollow nodes Ready"),
        "{}",
        text(&out)
    );

    let out = kubemark(&state, &cwd, &["debug", "hollow-node", "hollow-node-1-0"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out)
            .contains("pod kubemark/hollow-node-1 on external node external-node-0 (Running)"),
        "{}",
        text(&out)
    );
    let out = kubemark(&state, &cwd, &["debug", "hollow-node", "not-ours"]).await;
    assert!(!out.status.success());

    let out = kubemark(&state, &cwd, &["status"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("hollow-node pods: 2/2 Running"),
        "{}",
        text(&out)
    );

    // The nodes of a pod share its IP, each serving its kubelet API on a port of its own that it
    // advertises: the kubemark master's API server reaches hollow-node-1-1 on 10251 for logs.
    let kubeconfig = cwd.join("kubeconfig.kubemark");
    let master = kubemark_core::master::client_from_kubeconfig(&kubeconfig)
        .await
        .unwrap();
    let node: k8s_openapi::api::core::v1::Node = Api::all(master.clone())
        .get("hollow-node-1-1")
        .await
        .unwrap();
    let status = node.status.unwrap();
    assert_eq!(
        status
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port,
        10251
    );
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(master.clone(), "default");
    let pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "logger", "annotations": { "kubemark.io/log": "hello from pod 1, node 1" } },
        "spec": { "nodeName": "hollow-node-1-1", "containers": [{ "name": "c", "image": "busybox" }] },
    }))
    .unwrap();
    pods.create(&Default::default(), &pod).await.unwrap();
    kubemark_tests::running(&pods, "logger").await;
    let logs = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["logs", "logger"])
        .output()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("hello from pod 1, node 1"),
        "kubectl logs: {}",
        text(&logs)
    );

    // Each node has its own identity: the Secret holds a bootstrap token, not a node credential.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(ext_client.clone(), "kubemark");
    let s = secrets.get("hollow-node-credentials").await.unwrap();
    let bootstrap = String::from_utf8(s.data.unwrap()["bootstrap.kubeconfig"].0.clone()).unwrap();
    assert!(bootstrap.contains("token:") && !bootstrap.contains("client-key-data"));

    let out = kubemark(&state, &cwd, &["stop"]).await;
    assert!(out.status.success(), "stop: {}", text(&out));
    assert!(
        namespaces.get_opt("kubemark").await.unwrap().is_none(),
        "stop removes the namespace"
    );
    // The runner saw the pods go and stopped their processes.
    let marker = state.display().to_string();
    let start = std::time::Instant::now();
    while !kubemark_core::master::pids_mentioning(&marker).is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "hollow processes left"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    runner.stop().await;
    external.stop().await;
}
