//! `kubemark --provider pre-existing` as a user runs it: the master bootstrapped over real SSH
//! (Debian's sshd on a loopback port; this machine is the master host), hollow nodes Ready,
//! status, stop leaving nothing; a crash after each step of start, then stop, leaving nothing;
//! bad inputs as one clear line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kubemark_tests::sshd::Sshd;

fn kubemark(state: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    // Beside kubemark, where it looks for it: start runs nodes with it, image packs it.
    kubemark_tests::hollow_node();
    Command::new(env!("CARGO_BIN_EXE_kubemark"))
        .args(args)
        .env("KUBEMARK_STATE_DIR", state)
        .env_remove("CLOUD_PROVIDER")
        .env_remove("MASTER_IP")
        .env_remove("NUM_NODES")
        .env_remove("KUBEMARK_NUM_NODES")
        .envs(env.iter().copied())
        .current_dir(cwd)
        .output()
        .expect("kubemark runs")
}

use kubemark_tests::output_text as text;

/// A config file for a master on the test sshd whose directories live under `root`.
fn config(sshd: &Sshd, root: &Path, nodes: usize) -> PathBuf {
    let path = root.join("kubemark.yaml");
    let yaml = format!(
        "apiVersion: kubemark.io/v1alpha1\nkind: ClusterConfig\nprovider: pre-existing\nnodes: {nodes}\ntimeout: 120\n{}",
        common::master_on_sshd(
            sshd,
            root,
            &[
                format!("host: 127.0.0.1:{}", sshd.port),
                "bindAddress: 127.0.0.1".into(),
                "advertiseAddress: 127.0.0.1".into(),
            ]
        )
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Live processes whose command line mentions `marker`.
fn processes_mentioning(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let s = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (!s.is_empty() && s.contains(marker)).then(|| format!("{pid}: {s}"))
        })
        .collect()
}

/// Nothing of the cluster is left: no process, no master directory, no state, no kubeconfig.
fn assert_nothing_left(root: &Path, state: &Path, cwd: &Path, when: &str) {
    let procs = processes_mentioning(&root.display().to_string());
    assert!(procs.is_empty(), "{when}: processes left: {procs:?}");
    let procs = processes_mentioning(&state.display().to_string());
    assert!(procs.is_empty(), "{when}: processes left: {procs:?}");
    for d in ["etc-srv-kubernetes", "var-lib-kubemark", "var-log-kubemark"] {
        assert!(!root.join(d).exists(), "{when}: {d} left on the master");
    }
    let left: Vec<_> = std::fs::read_dir(state)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{when}: state left: {left:?}");
    assert!(
        !cwd.join("kubeconfig.kubemark").exists(),
        "{when}: kubeconfig left"
    );
}

#[test]
fn pre_existing_start_ready_status_stop_over_ssh_leaves_nothing() {
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let (state, cwd, root) = (
        tmp.path().join("state"),
        tmp.path().join("cwd"),
        tmp.path().join("master"),
    );
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let cfg = config(&sshd, &root, 3);
    let c = cfg.to_str().unwrap();

    let out = kubemark(&state, &cwd, &["start", "--config", c], &[]);
    assert!(out.status.success(), "start: {}", text(&out));
    assert!(
        text(&out).contains("3 hollow nodes Ready"),
        "{}",
        text(&out)
    );
    let kubeconfig = cwd.join("kubeconfig.kubemark");
    let nodes = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "nodes", "-o", "name"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&nodes.stdout).lines().count(),
        3,
        "{}",
        text(&nodes)
    );

    let status = kubemark(&state, &cwd, &["status"], &[]);
    let s = text(&status);
    assert!(status.status.success(), "{s}");
    assert!(
        s.contains("pre-existing") && s.contains("/readyz: ok"),
        "{s}"
    );
    assert!(s.contains("hollow nodes: 3/3 Ready"), "{s}");
    assert_eq!(s.matches(" running").count(), 4, "{s}");

    // A test run against the remote master samples its components over SSH.
    let report = cwd.join("run.json");
    let out = kubemark(
        &state,
        &cwd,
        &[
            "test",
            "density",
            "--pods-per-node",
            "2",
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "density: {}", text(&out));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(run["podsMeasured"], 6);
    let components = run["components"].as_array().unwrap();
    for name in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "hollow-nodes",
    ] {
        let c = components
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} not sampled: {components:?}"));
        assert!(c["rssMib"]["max"].as_f64().unwrap() > 1.0, "{c}");
    }
    assert_eq!(run["etcd"]["source"], "apiserver");

    // Flags win over the file: a second start of the same cluster is refused.
    let again = kubemark(&state, &cwd, &["start", "--config", c, "--nodes", "1"], &[]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already running"), "{}", text(&again));

    let stop = kubemark(&state, &cwd, &["stop"], &[]);
    assert!(stop.status.success(), "stop: {}", text(&stop));
    assert_nothing_left(&root, &state, &cwd, "after stop");
    let again = kubemark(&state, &cwd, &["stop"], &[]);
    assert!(
        again.status.success(),
        "stop is idempotent: {}",
        text(&again)
    );
}

#[test]
fn a_crash_after_any_step_of_start_then_stop_leaves_nothing() {
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    for step in [
        "recorded",
        "infrastructure",
        "pki",
        "master",
        "kubeconfig",
        "hollow",
    ] {
        let base = tmp.path().join(step);
        let (state, cwd, root) = (base.join("state"), base.join("cwd"), base.join("master"));
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        let cfg = config(&sshd, &root, 2);
        let out = kubemark(
            &state,
            &cwd,
            &["start", "--config", cfg.to_str().unwrap()],
            &[("KUBEMARK_CRASH_AFTER", step)],
        );
        assert!(!out.status.success(), "{step}: start did not crash");
        assert!(
            text(&out).contains(&format!("KUBEMARK_CRASH_AFTER={step}")),
            "{step}: {}",
            text(&out)
        );
        let stop = kubemark(&state, &cwd, &["stop"], &[]);
        assert!(stop.status.success(), "{step}: stop: {}", text(&stop));
        assert_nothing_left(&root, &state, &cwd, &format!("crash after {step}"));
    }
    // The same for a local master, after the step that leaves the most behind.
    let base = tmp.path().join("local");
    let (state, cwd) = kubemark_tests::state_and_cwd(&base);
    let out = kubemark(
        &state,
        &cwd,
        &["start", "--nodes", "2"],
        &[("KUBEMARK_CRASH_AFTER", "hollow")],
    );
    assert!(!out.status.success());
    let stop = kubemark(&state, &cwd, &["stop"], &[]);
    assert!(stop.status.success(), "local: stop: {}", text(&stop));
    assert_nothing_left(&base.join("none"), &state, &cwd, "local crash after hollow");
}

#[test]
fn bad_inputs_fail_with_one_line_and_leave_nothing() {
    let sshd = Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let (state, cwd, root) = (
        tmp.path().join("state"),
        tmp.path().join("cwd"),
        tmp.path().join("master"),
    );
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let cfg = config(&sshd, &root, 1);
    let c = cfg.to_str().unwrap();
    let other_key = tmp.path().join("other_key");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&other_key)
            .status()
            .unwrap()
            .success()
    );
    let malformed = tmp.path().join("bad.yaml");
    std::fs::write(
        &malformed,
        "apiVersion: kubemark.io/v1alpha1\nkind: ClusterConfig\nnodes: [1\n",
    )
    .unwrap();
    let unknown_field = tmp.path().join("typo.yaml");
    std::fs::write(
        &unknown_field,
        "apiVersion: kubemark.io/v1alpha1\nkind: ClusterConfig\nmaster:\n  hots: x\n",
    )
    .unwrap();
    let unreachable = format!("127.0.0.1:{}", common::free_port());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["start", "--provider", "nope"], "invalid value 'nope'"),
        (
            vec!["start", "--config", malformed.to_str().unwrap()],
            "config ",
        ),
        (
            vec!["start", "--config", unknown_field.to_str().unwrap()],
            "hots",
        ),
        (
            vec!["start", "--config", "/no/such/file.yaml"],
            "/no/such/file.yaml",
        ),
        (
            vec!["start", "--config", c, "--master", &unreachable],
            "Connection refused",
        ),
        (
            vec![
                "start",
                "--config",
                c,
                "--ssh-key",
                other_key.to_str().unwrap(),
            ],
            "Permission denied",
        ),
        (
            vec!["start", "--provider", "pre-existing", "--nodes", "1"],
            "needs the master host",
        ),
        (
            vec![
                "test",
                "density",
                "--kubeconfig",
                malformed.to_str().unwrap(),
            ],
            "kubeconfig",
        ),
        (
            vec![
                "start",
                "--nodes",
                "1",
                "--external-kubeconfig",
                "/no/such/kubeconfig",
            ],
            "/no/such/kubeconfig does not exist",
        ),
        (
            vec!["start", "--nodes", "1", "--external-kubeconfig", c],
            "need an image",
        ),
    ];
    for (args, needle) in cases {
        let out = kubemark(&state, &cwd, &args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one error line: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_nothing_left(&root, &state, &cwd, &format!("{args:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_master_given_by_kubeconfig_gets_hollow_nodes_and_keeps_running() {
    let master = kubemark_tests::Cluster::start().await;
    let kubeconfig = master.cp.kubeconfig_path().display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let (state, cwd) = kubemark_tests::state_and_cwd(tmp.path());
    let args = [
        "start",
        "--provider",
        "pre-existing",
        "--master-kubeconfig",
        &kubeconfig,
        "--nodes",
        "2",
    ];
    let out = kubemark(&state, &cwd, &args, &[]);
    assert!(out.status.success(), "start: {}", text(&out));
    assert!(
        text(&out).contains("2 hollow nodes Ready"),
        "{}",
        text(&out)
    );

    let both = kubemark(
        &state,
        &cwd,
        &[
            "start",
            "--provider",
            "pre-existing",
            "--master-kubeconfig",
            &kubeconfig,
            "--master",
            "127.0.0.1",
            "--cluster",
            "other",
        ],
        &[],
    );
    assert!(text(&both).contains("not both"), "{}", text(&both));

    let out = kubemark(&state, &cwd, &["stop"], &[]);
    assert!(out.status.success(), "stop: {}", text(&out));
    let client = master.client.clone();
    assert!(
        kubemark_core::master::apiserver_ready(&client).await,
        "stop leaves the master running"
    );
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    assert!(
        nodes
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "hollow nodes removed"
    );
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client, "kube-system");
    let ours = secrets
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=kubemark"))
        .await
        .unwrap();
    assert!(ours.items.is_empty(), "bootstrap token removed");
    assert!(
        std::fs::read_dir(&state).unwrap().next().is_none(),
        "state removed"
    );
    master.stop().await;
}
