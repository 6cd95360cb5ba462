//! The kubemark binary against a cluster that already runs (`kubemark_tests::Cluster`): the node
//! count from flag, environment and config file in that order of precedence, upstream's hollow-node
//! command lines, and `test density|load --kubeconfig` on a cluster kubemark did not start.

use std::path::Path;
use std::process::Output;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kubemark_tests::Cluster;

async fn kubemark(state: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    // Beside kubemark, where it looks for it: start runs nodes with it, image packs it.
    kubemark_tests::hollow_node();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kubemark"))
        .args(args)
        .env("KUBEMARK_STATE_DIR", state)
        .env_remove("CLOUD_PROVIDER")
        .env_remove("NUM_NODES")
        .env_remove("KUBEMARK_NUM_NODES")
        .env_remove("KUBEMARK_CONFIG")
        .envs(env.iter().copied())
        .current_dir(cwd)
        .output()
        .await
        .expect("kubemark runs")
}

use kubemark_tests::output_text as text;

async fn node_names(client: &kube::Client) -> Vec<String> {
    let mut names: Vec<String> = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    names.sort();
    names
}

/// Flags, environment, and the node count they should give.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    usize,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_count_comes_from_flag_then_environment_then_config_file() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (state, cwd) = kubemark_tests::state_and_cwd(tmp.path());
    let config = tmp.path().join("kubemark.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubemark.io/v1alpha1\nkind: ClusterConfig\nnodes: 1\n",
    )
    .unwrap();
    let kubeconfig = cluster.cp.kubeconfig_path().to_str().unwrap();
    let start = [
        "start",
        "--provider",
        "pre-existing",
        "--master-kubeconfig",
        kubeconfig,
        "--config",
        config.to_str().unwrap(),
    ];
    let cases: [Case; 5] = [
        (&[], &[], 1),
        (&[], &[("NUM_NODES", "2")], 2),
        // Upstream: NUM_NODES=${KUBEMARK_NUM_NODES:-10}.
        (&[], &[("NUM_NODES", "2"), ("KUBEMARK_NUM_NODES", "3")], 3),
        (&["--nodes", "4"], &[("NUM_NODES", "2")], 4),
        (
            &["--nodes", "2"],
            &[("NUM_NODES", "3"), ("KUBEMARK_NUM_NODES", "4")],
            2,
        ),
    ];
    for (flags, env, want) in cases {
        let args: Vec<&str> = start.iter().chain(flags).copied().collect();
        let what = format!("{flags:?} {env:?}");
        let out = kubemark(&state, &cwd, &args, env).await;
        assert!(out.status.success(), "{what}: start: {}", text(&out));
        assert_eq!(node_names(&cluster.client).await.len(), want, "{what}");
        let out = kubemark(&state, &cwd, &["stop"], &[]).await;
        assert!(out.status.success(), "{what}: stop: {}", text(&out));
        assert!(node_names(&cluster.client).await.is_empty(), "{what}");
    }
    cluster.stop().await;
}

/// Upstream's hollow-node template runs `kubemark --morph=kubelet|proxy` with these flags; the
/// same command line starts our `hollow-node` as kubelet and proxy, and the flags take effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_hollow_node_command_lines_run() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cp = &cluster.cp;
    let name = "upstream-0";
    let kubelet_kubeconfig = dir.path().join("kubelet.kubeconfig");
    cp.kubeconfig_for(name, cp.pki().issue_kubelet_client(name).unwrap())
        .write(&kubelet_kubeconfig)
        .unwrap();
    let proxy_kubeconfig = dir.path().join("kubeproxy.kubeconfig");
    cp.kubeconfig_for("kube-proxy", cp.pki().kube_proxy.clone())
        .write(&proxy_kubeconfig)
        .unwrap();
    let kubelet_log = dir.path().join(format!("kubelet-{name}.log"));
    let proxy_log = dir.path().join(format!("kubeproxy-{name}.log"));
    let hollow_node = kubemark_tests::hollow_node();
    let spawn = |args: Vec<String>| {
        tokio::process::Command::new(&hollow_node)
            .args(args)
            .kill_on_drop(true)
            .spawn()
            .expect("hollow-node runs")
    };
    let content_type = "--kube-api-content-type=application/vnd.kubernetes.protobuf";
    let mut kubelet = spawn(vec![
        "--morph=kubelet".into(),
        format!("--name={name}"),
        "--v=2".into(),
        "--max-pods=57".into(),
        "--node-labels=kubemark=true,pool=upstream".into(),
        "--use-host-image-service=false".into(),
        format!("--kubeconfig={}", kubelet_kubeconfig.display()),
        content_type.into(),
        format!("--log-file={}", kubelet_log.display()),
        "--logtostderr=false".into(),
    ]);
    let mut proxy = spawn(vec![
        "--morph=proxy".into(),
        format!("--name={name}"),
        "--v=2".into(),
        "--use-real-proxier=false".into(),
        format!("--kubeconfig={}", proxy_kubeconfig.display()),
        content_type.into(),
        format!("--log-file={}", proxy_log.display()),
        "--logtostderr=false".into(),
    ]);
    let nodes = cluster.wait_ready(1).await;
    let node = &nodes[0];
    assert_eq!(node.metadata.name.as_deref(), Some(name));
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("pool").map(String::as_str), Some("upstream"));
    let capacity = node.status.as_ref().unwrap().capacity.clone().unwrap();
    assert_eq!(capacity["pods"].0, "57");
    // kube-proxy's birth cry on the node: the proxy morph runs.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(cluster.client.clone(), "default");
    kubemark_tests::eventually(
        "kube-proxy's Starting event",
        std::time::Duration::from_secs(30),
        || {
            let events = events.clone();
            async move {
                events
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .any(|e| {
                        e.reason.as_deref() == Some("Starting")
                            && e.reporting_controller.as_deref() == Some("kube-proxy")
                            && e.regarding.and_then(|r| r.name).as_deref() == Some(name)
                    })
                    .then_some(())
            }
        },
    )
    .await;
    assert!(kubelet.try_wait().unwrap().is_none(), "the kubelet exited");
    assert!(proxy.try_wait().unwrap().is_none(), "the proxy exited");
    // --log-file with --logtostderr=false: the log goes to the file.
    for log in [&kubelet_log, &proxy_log] {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(!text.is_empty(), "{} is empty", log.display());
    }
    kubelet.kill().await.unwrap();
    proxy.kill().await.unwrap();
    cluster.stop().await;
}

/// `kubemark test density|load --kubeconfig` on a cluster kubemark did not start: no kubemark
/// state, hollow nodes that are not kubemark's own processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn density_and_load_run_against_any_kubeconfig() {
    let cluster = Cluster::with_nodes("any", 2).await;
    let tmp = tempfile::tempdir().unwrap();
    let (state, cwd) = kubemark_tests::state_and_cwd(tmp.path());
    let kubeconfig = cluster.cp.kubeconfig_path().to_str().unwrap();
    for test in ["density", "load"] {
        let report = cwd.join(format!("{test}.json"));
        let mut args = vec![
            "test",
            test,
            "--kubeconfig",
            kubeconfig,
            "--pods-per-node",
            "2",
            "--timeout",
            "120",
            "--report",
            report.to_str().unwrap(),
        ];
        if test == "load" {
            args.extend(["--focus", "deployments"]);
        }
        let out = kubemark(&state, &cwd, &args, &[]).await;
        assert!(out.status.success(), "{test}: {}", text(&out));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(json["kind"], "TestRun", "{test}: {json}");
        assert_eq!(json["test"], test, "{test}");
    }
    assert!(
        !state.exists() || std::fs::read_dir(&state).unwrap().next().is_none(),
        "no kubemark state was needed or made"
    );
    cluster.stop().await;
}
