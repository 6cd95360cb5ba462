//! The local control plane against real clients: readiness, kubectl, the Node authorizer, a
//! component restarted when it exits, and that stop leaves nothing behind.

use std::net::TcpStream;
use std::process::Command;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubemark_core::master::{LocalControlPlane, LocalOptions, client_from_kubeconfig};
use kubemark_core::pki::write_private;
use kubemark_tests::Cluster;

/// For the tests of the control plane's own lifecycle: stop, supervision, a panic.
async fn control_plane() -> LocalControlPlane {
    Cluster::start().await.into_control_plane()
}

fn node(name: &str) -> Node {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "labels": { "kubernetes.io/hostname": name } },
    }))
    .unwrap()
}

#[tokio::test]
async fn control_plane_is_ready_and_kubectl_works() {
    let cluster = Cluster::start().await;
    let cp = &cluster.cp;
    let client = cluster.client.clone();
    let req = http::Request::get("/readyz?verbose")
        .body(Vec::new())
        .unwrap();
    let readyz = client.request_text(req).await.unwrap();
    assert!(readyz.contains("readyz check passed"), "{readyz}");

    let out = Command::new("kubectl")
        .args([
            "--kubeconfig",
            cp.kubeconfig_path().to_str().unwrap(),
            "get",
            "ns",
            "-o",
            "name",
        ])
        .output()
        .expect("kubectl is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for ns in [
        "namespace/default",
        "namespace/kube-system",
        "namespace/kube-node-lease",
    ] {
        assert!(stdout.lines().any(|l| l == ns), "missing {ns} in {stdout}");
    }
    cluster.stop().await;
}

#[tokio::test]
async fn a_kubelet_certificate_may_write_its_own_node_only() {
    let cluster = Cluster::start().await;
    let (cp, dir) = (&cluster.cp, &cluster.dir);
    let mut clients = Vec::new();
    for name in ["node-a", "node-b"] {
        let cert = cp.pki().issue_kubelet_client(name).unwrap();
        let path = dir.path().join(format!("{name}.kubeconfig"));
        write_private(&path, &cp.kubeconfig_for(name, cert).to_yaml().unwrap()).unwrap();
        let client = client_from_kubeconfig(&path).await.unwrap();
        let nodes: Api<Node> = Api::all(client);
        // NodeRestriction lets a kubelet create its own Node object.
        nodes
            .create(&PostParams::default(), &node(name))
            .await
            .unwrap();
        clients.push(nodes);
    }
    let node_a = &clients[0];
    let status = serde_json::json!({ "status": { "conditions": [{
        "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test",
        "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"
    }]}});
    let patched = node_a
        .patch_status(
            "node-a",
            &PatchParams::default(),
            &Patch::Strategic(&status),
        )
        .await
        .unwrap();
    let ready = patched.status.unwrap().conditions.unwrap();
    assert!(
        ready
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );

    let label = serde_json::json!({ "metadata": { "labels": { "stolen": "yes" } } });
    let err = node_a
        .patch("node-b", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 403, "expected Forbidden, got {s:?}"),
        other => panic!("expected a 403 from the Node authorizer, got {other}"),
    }
    let err = node_a
        .patch_status(
            "node-b",
            &PatchParams::default(),
            &Patch::Strategic(&status),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "status of another node: {err}"
    );
    cluster.stop().await;
}

fn assert_nothing_left(pids: &[(String, u32)], ports: &[u16], dir: &std::path::Path) {
    for (name, pid) in pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(&dir.display().to_string()),
            "{name} (pid {pid}) is still running"
        );
    }
    for port in ports {
        assert!(
            TcpStream::connect(("127.0.0.1", *port)).is_err(),
            "port {port} still accepts connections"
        );
    }
    assert!(!dir.exists(), "work dir {} still exists", dir.display());
}

#[tokio::test]
async fn stop_leaves_no_process_port_or_file() {
    let cp = control_plane().await;
    let pids = cp.pids();
    assert_eq!(pids.len(), 4);
    let p = cp.ports();
    let ports = [
        p.etcd_client,
        p.etcd_peer,
        p.apiserver,
        p.controller_manager,
        p.scheduler,
    ];
    let dir = cp.work_dir().to_path_buf();
    cp.stop().await.unwrap();
    assert_nothing_left(&pids, &ports, &dir);
}

#[tokio::test]
async fn an_exited_component_is_restarted_by_name_and_stop_still_leaves_nothing() {
    let mut cp = control_plane().await;
    assert_eq!(cp.supervise().unwrap(), Vec::<&str>::new());
    let pid_of = |cp: &LocalControlPlane, component: &str| {
        cp.pids()
            .into_iter()
            .find(|(c, _)| c == component)
            .map(|(_, pid)| pid)
            .unwrap()
    };
    let killed = pid_of(&cp, "kube-scheduler");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(killed as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let restarted = kubemark_tests::eventually(
        "the killed scheduler restarted",
        std::time::Duration::from_secs(10),
        || {
            let found = cp.supervise().unwrap();
            async move { (!found.is_empty()).then_some(found) }
        },
    )
    .await;
    assert_eq!(restarted, ["kube-scheduler"]);
    assert_ne!(pid_of(&cp, "kube-scheduler"), killed);
    assert_eq!(cp.supervise().unwrap(), Vec::<&str>::new(), "once only");

    let pids = cp.pids();
    let dir = cp.work_dir().to_path_buf();
    cp.stop().await.unwrap();
    assert_nothing_left(&pids, &[], &dir);
}

#[tokio::test]
async fn a_panicking_test_still_leaves_nothing() {
    let cp = control_plane().await;
    let pids = cp.pids();
    let dir = cp.work_dir().to_path_buf();
    let port = cp.ports().apiserver;
    let handle = tokio::spawn(async move {
        let _cp = cp;
        panic!("simulated test failure");
    });
    assert!(handle.await.is_err());
    assert_nothing_left(&pids, &[port], &dir);
}

#[tokio::test]
async fn detached_control_plane_is_stopped_from_its_state_file() {
    let work = tempfile::tempdir().unwrap();
    let mut options = LocalOptions::from_env().unwrap();
    options.work_dir = Some(work.path().join("cluster"));
    let cp = LocalControlPlane::start(options).await.unwrap();
    let state = cp.detach().unwrap();
    let read = LocalControlPlane::read_state(&state.work_dir).unwrap();
    assert_eq!(read.processes, state.processes);
    for (_, pid) in &state.processes {
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "detached components keep running"
        );
    }
    LocalControlPlane::stop_detached(&read).await.unwrap();
    LocalControlPlane::stop_detached(&read).await.unwrap();
    assert_nothing_left(&state.processes, &[state.ports.apiserver], &state.work_dir);
}

#[tokio::test]
async fn a_broken_component_fails_start_with_its_log_and_cleans_up() {
    let mut options = LocalOptions::from_env().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A "kube-apiserver" that exits at once, as a wrong binary or bad flag would.
    let fake = dir.path().join("kube-apiserver");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'E0101 fatal: simulated bad flag' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    options.binaries.kube_apiserver = fake;
    let work = dir.path().join("work");
    options.work_dir = Some(work.clone());
    let err = LocalControlPlane::start(options)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("kube-apiserver exited"), "{err}");
    assert!(err.contains("simulated bad flag"), "{err}");
    assert!(!work.exists(), "failed start left its work dir");
}
