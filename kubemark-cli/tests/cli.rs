//! The `kubemark` binary as a user runs it, against the real local control plane.

use std::path::Path;
use std::process::{Command, Output};

fn kubemark(state: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubemark"))
        .args(args)
        .env("KUBEMARK_STATE_DIR", state)
        .env_remove("CLOUD_PROVIDER")
        .current_dir(cwd)
        .output()
        .expect("kubemark runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn start_kubectl_status_stop_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (state, cwd) = (tmp.path().join("state"), tmp.path().join("cwd"));
    std::fs::create_dir_all(&cwd).unwrap();

    let out = kubemark(
        &state,
        &cwd,
        &[
            "start",
            "--provider",
            "local",
            "--cluster",
            "cli-test",
            "--nodes",
            "3",
        ],
    );
    assert!(out.status.success(), "start failed: {}", text(&out));
    let kubeconfig = cwd.join("kubeconfig.kubemark");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&kubeconfig).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the kubeconfig holds the admin key");

    let kubectl = Command::new("kubectl")
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "get",
            "ns",
            "kube-system",
            "-o",
            "name",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&kubectl.stdout).trim(),
        "namespace/kube-system",
        "{}",
        text(&kubectl)
    );

    let status = kubemark(&state, &cwd, &["status", "--cluster", "cli-test"]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(text(&status).contains("/readyz: ok"), "{}", text(&status));
    assert!(
        text(&status).contains("hollow nodes: 3/3 Ready"),
        "{}",
        text(&status)
    );
    let nodes = Command::new("kubectl")
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "get",
            "nodes",
            "-o",
            "name",
        ])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&nodes.stdout);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(listed.contains("node/hollow-node-0"), "{listed}");

    let again = kubemark(&state, &cwd, &["start", "--cluster", "cli-test"]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already running"), "{}", text(&again));

    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("cli-test/cluster.json")).unwrap(),
    )
    .unwrap();
    let pids: Vec<u64> = record["local"]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 4);

    let stop = kubemark(&state, &cwd, &["stop", "--cluster", "cli-test"]);
    assert!(stop.status.success(), "{}", text(&stop));
    for pid in pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(cmdline.is_empty(), "pid {pid} still running after stop");
    }
    assert!(!kubeconfig.exists(), "stop removes the kubeconfig it wrote");
    assert!(
        !state.join("cli-test").exists(),
        "stop removes the cluster's state"
    );

    let stop_again = kubemark(&state, &cwd, &["stop", "--cluster", "cli-test"]);
    assert!(
        stop_again.status.success(),
        "stop is idempotent: {}",
        text(&stop_again)
    );
}

#[test]
fn bad_input_is_one_clear_line_and_a_non_zero_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["start", "--provider", "nope"],
            "invalid value 'nope' for '--provider",
        ),
        (
            &["start", "--cluster", "Bad_Name"],
            "invalid cluster name \"Bad_Name\"",
        ),
        (
            &["start", "--bin-dir", "/nonexistent", "--cluster", "nobins"],
            "not found",
        ),
        (
            &["status", "--cluster", "missing"],
            "no kubemark cluster missing",
        ),
        (&["start", "--provider", "gce"], "not implemented yet"),
    ];
    for (args, expected) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubemark"));
        cmd.args(args)
            .env("KUBEMARK_STATE_DIR", tmp.path())
            .current_dir(tmp.path());
        if args.contains(&"nobins") {
            // Only the flag's directory, an empty PATH and an empty cache: nothing to find.
            cmd.env("PATH", "")
                .env("KUBEMARK_CACHE_DIR", tmp.path().join("cache"))
                .env_remove("KUBEMARK_BIN_DIR");
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr}"
        );
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error:"),
            "{args:?}: first line should be the error: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
}
