//! The example provider's own `kubemark` binary as a user runs it: `start --provider example`
//! with three hollow nodes (the master on this machine, from the control-plane binaries in
//! kubemark's cache), `status`, `stop`; the provider's records are created, tagged, recorded
//! without the secret, and gone after stop.

use std::path::Path;
use std::process::{Command, Output};

fn kubemark(state: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubemark-example"))
        .args(args)
        .env("KUBEMARK_STATE_DIR", state)
        .env("KUBEMARK_EXAMPLE_TOKEN", "s3cret")
        .env_remove("CLOUD_PROVIDER")
        .env_remove("KUBEMARK_EXAMPLE_DIR")
        .current_dir(cwd)
        .output()
        .expect("kubemark-example runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn records(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn start_status_stop_with_the_example_provider() {
    let tmp = tempfile::tempdir().unwrap();
    let (state, cwd, infra) = (
        tmp.path().join("state"),
        tmp.path().join("cwd"),
        tmp.path().join("infra"),
    );
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&infra).unwrap();
    std::fs::write(infra.join("token"), "s3cret").unwrap();
    let dir_setting = format!("dir={}", infra.display());

    let help = kubemark(&state, &cwd, &["start", "--help"]);
    assert!(
        text(&help).contains("dir (KUBEMARK_EXAMPLE_DIR) [required]"),
        "{}",
        text(&help)
    );
    let missing = kubemark(&state, &cwd, &["start", "--provider", "example"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("missing required setting dir (KUBEMARK_EXAMPLE_DIR)"),
        "{}",
        text(&missing)
    );

    let args = [
        "start",
        "--provider",
        "example",
        "--provider-setting",
        &dir_setting,
        "--cluster",
        "ex",
        "--nodes",
        "3",
        "--timeout",
        "120",
    ];
    let out = kubemark(&state, &cwd, &args);
    assert!(out.status.success(), "start: {}", text(&out));
    assert!(text(&out).contains("3 hollow nodes"), "{}", text(&out));
    assert_eq!(records(&infra), ["ex-firewall.json", "ex-static-ip.json"]);
    let firewall = std::fs::read_to_string(infra.join("ex-firewall.json")).unwrap();
    assert!(
        firewall.contains("\"kubemark.io/cluster\": \"ex\""),
        "{firewall}"
    );
    let recorded = std::fs::read_to_string(state.join("ex/cluster.json")).unwrap();
    assert!(recorded.contains("\"provider\": \"example\""), "{recorded}");
    assert!(
        recorded.contains(&infra.display().to_string()),
        "{recorded}"
    );
    assert!(
        !recorded.contains("s3cret"),
        "a secret setting is never recorded"
    );

    let out = kubemark(&state, &cwd, &["status", "--cluster", "ex"]);
    assert!(out.status.success(), "status: {}", text(&out));
    let status = text(&out);
    assert!(status.contains("provider:   example"), "{status}");
    assert!(status.contains("hollow nodes: 3/3 Ready"), "{status}");

    let out = kubemark(&state, &cwd, &["stop", "--cluster", "ex"]);
    assert!(out.status.success(), "stop: {}", text(&out));
    assert_eq!(
        records(&infra),
        Vec::<String>::new(),
        "stop deletes the records"
    );
    assert!(!state.join("ex").exists(), "stop removes the state");
}
