//! The `kubemark` binary as a user runs it, against the real local control plane.

use std::path::Path;
use std::process::{Command, Output};

fn kubemark(state: &Path, cwd: &Path, args: &[&str]) -> Output {
    // Beside kubemark, where it looks for it: start runs nodes with it, image packs it.
    kubemark_tests::hollow_node();
    Command::new(env!("CARGO_BIN_EXE_kubemark"))
        .args(args)
        .env("KUBEMARK_STATE_DIR", state)
        .env_remove("CLOUD_PROVIDER")
        .current_dir(cwd)
        .output()
        .expect("kubemark runs")
}

/// `kubemark args` started in the background (output piped), to be interrupted.
fn spawn_kubemark(state: &Path, cwd: &Path, args: &[&str]) -> std::process::Child {
    kubemark_tests::hollow_node();
    Command::new(env!("CARGO_BIN_EXE_kubemark"))
        .args(args)
        .env("KUBEMARK_STATE_DIR", state)
        .env_remove("CLOUD_PROVIDER")
        .current_dir(cwd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubemark starts")
}

use kubemark_tests::output_text as text;

#[test]
fn start_kubectl_status_stop_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (state, cwd) = kubemark_tests::state_and_cwd(tmp.path());

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
            "--master-arg",
            "kube-controller-manager=--node-monitor-grace-period=41s",
        ],
    );
    assert!(out.status.success(), "start failed: {}", text(&out));
    let kcm_has_the_flag = std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        cmdline.contains("kube-controller-manager")
            && cmdline.contains("cli-test")
            && cmdline.contains("--node-monitor-grace-period=41s")
    });
    assert!(
        kcm_has_the_flag,
        "--master-arg reached the controller-manager"
    );
    let kubeconfig = cwd.join("kubeconfig.kubemark");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&kubeconfig).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the kubeconfig holds the admin key");

    let ns = Command::new("kubectl")
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
        String::from_utf8_lossy(&ns.stdout).trim(),
        "namespace/kube-system",
        "{}",
        text(&ns)
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

    // Every node serves the kubelet API on an address of its own: kubectl logs reaches it
    // through the API server, which verifies its certificate.
    let ip = kubectl(
        &cwd,
        &[
            "get",
            "node",
            "hollow-node-0",
            "-o",
            "jsonpath={.status.addresses[0].address}",
        ],
    );
    assert!(ip.starts_with("127."), "{ip}");
    kubectl(
        &cwd,
        &[
            "run",
            "logme",
            "--image=busybox",
            "--restart=Never",
            "--",
            "sleep",
            "3600",
        ],
    );
    kubectl(
        &cwd,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/logme",
            "--timeout=60s",
        ],
    );
    let log = kubectl(&cwd, &["logs", "logme"]);
    assert!(log.contains("hollow container logme started"), "{log}");

    // One node's log lines, and where it runs.
    let logs = kubemark(
        &state,
        &cwd,
        &["logs", "--cluster", "cli-test", "hollow-node-1"],
    );
    assert!(logs.status.success(), "{}", text(&logs));
    let lines = String::from_utf8_lossy(&logs.stdout).into_owned();
    assert!(lines.contains("registered"), "{lines}");
    assert!(
        lines
            .lines()
            .all(|l| l.contains("node=hollow-node-1") && !l.contains('\u{1b}')),
        "{lines}"
    );
    let debug = kubemark(
        &state,
        &cwd,
        &[
            "debug",
            "hollow-node",
            "--cluster",
            "cli-test",
            "hollow-node-2",
        ],
    );
    assert!(text(&debug).contains("local process"), "{}", text(&debug));
    let unknown = kubemark(
        &state,
        &cwd,
        &["logs", "--cluster", "cli-test", "hollow-node-3"],
    );
    assert!(!unknown.status.success(), "only 3 nodes: 0..2");

    let again = kubemark(&state, &cwd, &["start", "--cluster", "cli-test"]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already running"), "{}", text(&again));

    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("cli-test/cluster.json")).unwrap(),
    )
    .unwrap();
    let pids: Vec<u64> = record["master"]["state"]["processes"]
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

/// Waits (up to a minute) until `ready`, then sends the child SIGTERM, as Ctrl-C, `timeout` or a
/// CI job's end would, and collects what it printed.
fn sigterm_once(child: std::process::Child, what: &str, ready: impl Fn() -> bool) -> Output {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{what} never happened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait_with_output().unwrap()
}

/// Processes whose command line names `needle` (this test's own directories).
fn processes_naming(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| {
            let cmdline = std::fs::read(p.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(needle).then_some(cmdline)
        })
        .collect()
}

#[test]
fn start_interrupted_by_sigterm_leaves_nothing_running() {
    // SIGTERM (a supervisor, `timeout`, a CI job's end) while the control plane is coming up:
    // the start undoes what it began, as for Ctrl-C.
    let tmp = tempfile::tempdir().unwrap();
    let (state, cwd) = kubemark_tests::state_and_cwd(tmp.path());
    let needle = state.to_str().unwrap().to_string();
    let child = spawn_kubemark(
        &state,
        &cwd,
        &[
            "start",
            "--provider",
            "local",
            "--cluster",
            "sigterm-test",
            "--nodes",
            "3",
        ],
    );
    // Once etcd runs, the start is under way and has something to undo.
    let out = sigterm_once(child, "etcd starting", || {
        processes_naming(&needle).iter().any(|c| c.contains("etcd"))
    });
    assert!(!out.status.success(), "an interrupted start fails");
    assert!(
        text(&out).contains("interrupted; nothing was left running"),
        "{}",
        text(&out)
    );
    assert_eq!(processes_naming(&needle), Vec::<String>::new());
    assert!(
        !state.join("sigterm-test").exists(),
        "nothing recorded is left"
    );
}

#[test]
fn bad_input_is_one_clear_line_and_a_non_zero_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 11] = [
        (
            &["start", "--provider", "nope"],
            "invalid value 'nope' for '--provider",
        ),
        (
            &["start", "--provider-setting", "bogus=1", "--cluster", "x"],
            "unknown setting \"bogus\"; the local provider reads none",
        ),
        (
            &["start", "--provider", "gce", "--provider-setting", "zone"],
            "--provider-setting zone: expected KEY=VALUE",
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
        (
            &["start", "--provider", "gce"],
            "missing required setting project (PROJECT, CLOUDSDK_CORE_PROJECT, GOOGLE_CLOUD_PROJECT)",
        ),
        (
            &["bench", "--master-arg", "etcd=--quota-backend-bytes=1"],
            "--master-arg etcd=--quota-backend-bytes=1: unknown component \"etcd\"",
        ),
        (
            &["bench", "--kube-api-qps", "0"],
            "--kube-api-qps must be a positive number, not 0",
        ),
        (
            // Refused before anything starts: no machine allows 4 billion inotify instances.
            &["bench", "--nodes", "1", "--upstream", "2000000000"],
            "inotify instances but /proc/sys/fs/inotify/max_user_instances is",
        ),
        (
            &[
                "start",
                "--provider",
                "pre-existing",
                "--master",
                "10.0.0.1",
                "--master-arg",
                "kube-scheduler=--v=2",
            ],
            "--master-arg is supported with --provider local only",
        ),
    ];
    for (args, expected) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubemark"));
        cmd.args(args)
            .env("KUBEMARK_STATE_DIR", tmp.path())
            .env_remove("PROJECT")
            .env_remove("CLOUDSDK_CORE_PROJECT")
            .env_remove("GOOGLE_CLOUD_PROJECT")
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

/// A provider is known only through the registry: an unknown name from the config file or from
/// a cluster's state is one clear error listing the known ones, never a fallback to local.
#[test]
fn unknown_providers_are_named_with_the_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubemark.io/v1alpha1\nkind: ClusterConfig\nprovider: nope\n",
    )
    .unwrap();
    let dir = tmp.path().join("ghost");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("cluster.json"),
        r#"{"apiVersion":"kubemark.io/v1alpha1","kind":"ClusterState","cluster":"ghost","provider":"nope","phase":"running","master":{"type":"existing","kubeconfig":"/nonexistent"},"server":null}"#,
    )
    .unwrap();
    let known = "unknown provider \"nope\"; known providers: local, gce, aws, pre-existing";
    for args in [
        &["start", "--config", config.to_str().unwrap()][..],
        &["status", "--cluster", "ghost"],
        &["stop", "--cluster", "ghost"],
    ] {
        let out = kubemark(tmp.path(), tmp.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(stderr.contains(known), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
    assert!(
        dir.join("cluster.json").exists(),
        "stop must not remove what it cannot stop"
    );
}

fn kubectl(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .args([
            "--kubeconfig",
            cwd.join("kubeconfig.kubemark").to_str().unwrap(),
        ])
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn load_run_creates_and_deletes_every_kind_and_keeps_only_when_told() {
    let tmp = tempfile::tempdir().unwrap();
    let (state, cwd) = kubemark_tests::state_and_cwd(tmp.path());
    let c = ["--cluster", "load-test"];
    let out = kubemark(&state, &cwd, &["start", c[0], c[1], "--nodes", "3"]);
    assert!(out.status.success(), "start failed: {}", text(&out));
    let kinds = "deployments,services,configmaps,secrets,jobs,statefulsets,daemonsets";

    let report = cwd.join("load.json");
    let args = [
        "test",
        "load",
        c[0],
        c[1],
        "--pods-per-node",
        "6",
        "--qps",
        "50",
    ];
    let mut full = args.to_vec();
    full.extend(["--report", report.to_str().unwrap()]);
    let out = kubemark(&state, &cwd, &full);
    assert!(out.status.success(), "load failed: {}", text(&out));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        (run["kind"].as_str(), run["test"].as_str()),
        (Some("TestRun"), Some("load"))
    );
    let objects = run["objects"].as_array().unwrap();
    for kind in [
        "Deployment",
        "StatefulSet",
        "Job",
        "DaemonSet",
        "Service",
        "ConfigMap",
        "Secret",
    ] {
        let o = objects
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind} missing from {objects:?}"));
        assert!(o["created"].as_u64().unwrap() >= 1, "{o}");
        assert_eq!(
            o["created"], o["deleted"],
            "every {kind} created was deleted"
        );
    }
    let phases: Vec<&str> = run["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["create", "scale", "delete"]);
    // 3 DaemonSet pods + 5 each for the Deployment, StatefulSet and Job, plus the pods the scale
    // phase and the DaemonSet roll made: all measured.
    assert!(
        run["podsCreated"].as_u64().unwrap() >= 18,
        "{}",
        run["podsCreated"]
    );
    assert_eq!(run["podsMeasured"], run["podsCreated"]);
    assert_eq!(
        kubectl(
            &cwd,
            &["get", "ns", "-l", "kubemark.io/test=load", "-o", "name"]
        ),
        "",
        "nothing is left"
    );

    // Told to keep, with a focus: only the focused kinds exist, and they stay.
    let mut keep = args.to_vec();
    keep.extend([
        "--focus",
        "deployments,services",
        "--delete-namespace=false",
    ]);
    let kept_report = cwd.join("keep.json");
    keep.extend(["--report", kept_report.to_str().unwrap()]);
    let out = kubemark(&state, &cwd, &keep);
    assert!(out.status.success(), "load --focus failed: {}", text(&out));
    let left = kubectl(
        &cwd,
        &[
            "get",
            kinds,
            "-A",
            "-l",
            "kubemark.io/test=load",
            "-o",
            "name",
        ],
    );
    let mut left: Vec<&str> = left.lines().map(|l| l.split('/').next().unwrap()).collect();
    left.sort();
    assert_eq!(
        left,
        ["deployment.apps", "service"],
        "kept exactly the focused kinds"
    );
    let running = kubectl(
        &cwd,
        &[
            "get",
            "pods",
            "-A",
            "-l",
            "kubemark.io/test=load",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "name",
        ],
    );
    assert_eq!(
        running.lines().count(),
        5,
        "the kept Deployment's pods still run"
    );

    let out = kubemark(
        &state,
        &cwd,
        &["test", "load", c[0], c[1], "--focus", "nodes"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("invalid value 'nodes' for '--focus"),
        "{}",
        text(&out)
    );

    let stop = kubemark(&state, &cwd, &["stop", c[0], c[1]]);
    assert!(stop.status.success(), "{}", text(&stop));

    // The load section of the dashboard: objects, phases and etcd, for both runs.
    let html = cwd.join("load.html");
    let out = kubemark(
        &state,
        &cwd,
        &[
            "test",
            "report",
            report.to_str().unwrap(),
            kept_report.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "report failed: {}", text(&out));
    let (dom, console) = chromium(&html, &tmp.path().join("load.png"));
    for needle in ["phase scale", "StatefulSet", "apiserver+etcd"] {
        assert!(dom.contains(needle), "{needle} is not on the page");
    }
    let db = run["etcd"]["dbSizeBytes"].as_f64().unwrap() / 1048576.0;
    assert!(
        dom.contains(&format!("{db:.1}")),
        "db size {db:.1} MiB from the JSON is not on the page"
    );
    assert!(!console.contains("Uncaught"), "console errors: {console}");
}

#[test]
fn density_run_reports_what_it_created_and_a_tight_slo_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let (state, cwd) = kubemark_tests::state_and_cwd(tmp.path());
    let c = ["--cluster", "density-test"];
    let out = kubemark(&state, &cwd, &["start", c[0], c[1], "--nodes", "3"]);
    assert!(out.status.success(), "start failed: {}", text(&out));

    let report = cwd.join("run.json");
    let out = kubemark(
        &state,
        &cwd,
        &[
            "test",
            "density",
            c[0],
            c[1],
            "--pods-per-node",
            "4",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "density failed: {}", text(&out));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(run["apiVersion"], "kubemark.io/v1alpha1");
    assert_eq!(run["kind"], "TestRun");
    assert_eq!(run["nodes"], 3);
    assert_eq!(run["podsCreated"], 12);
    assert_eq!(
        run["podsMeasured"], run["podsCreated"],
        "every created pod is measured"
    );
    assert_eq!(run["podStartupMs"]["count"], 12);
    for key in ["p50", "p90", "p99", "max"] {
        assert!(
            run["podStartupMs"][key].as_f64().unwrap() > 0.0,
            "podStartupMs.{key}"
        );
    }
    assert!(
        run["apiCalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["verb"] == "POST" && c["resource"] == "pods")
    );
    let components: Vec<&str> = run["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "hollow-nodes",
    ] {
        assert!(
            components.contains(&name),
            "{name} missing from {components:?}"
        );
    }
    assert_eq!(
        run["etcd"]["source"], "apiserver+etcd",
        "local etcd is scraped"
    );
    assert!(run["etcd"]["dbSizeBytes"].as_f64().unwrap() > 0.0);
    assert!(run["etcd"]["walFsyncP99Seconds"].as_f64().is_some());
    assert!(
        run["etcd"]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["operation"] == "create" && r["resource"] == "pods"),
        "the API server's pod creates reached etcd"
    );
    assert_eq!(run["pass"], true);

    // A threshold nobody can meet: non-zero exit, the failing measurement named; the namespace
    // is kept because of --delete-namespace=false.
    let out = kubemark(
        &state,
        &cwd,
        &[
            "test",
            "density",
            c[0],
            c[1],
            "--pods-per-node",
            "1",
            "--pod-startup-threshold",
            "0.001",
            "--delete-namespace=false",
            "--report",
            cwd.join("tight.json").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "a failed SLO must fail the command");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SLO failed: PodStartupLatency p50"),
        "{stderr}"
    );
    let density_namespaces = || {
        let out = Command::new("kubectl")
            .args([
                "--kubeconfig",
                cwd.join("kubeconfig.kubemark").to_str().unwrap(),
            ])
            .args(["get", "ns", "-l", "kubemark.io/test=density", "-o", "name"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(density_namespaces(), 1, "only the kept namespace remains");

    // Interrupted (SIGTERM, as Ctrl-C or a CI timeout would), a run deletes what it created and
    // says so; the namespace kept above stays.
    let child = spawn_kubemark(
        &state,
        &cwd,
        &[
            "test",
            "density",
            c[0],
            c[1],
            "--pods-per-node",
            "30",
            "--qps",
            "2",
        ],
    );
    let out = sigterm_once(child, "the run's namespace", || {
        let created = density_namespaces() >= 2;
        if created {
            // Pods are being created by then.
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        created
    });
    assert!(!out.status.success(), "an interrupted run fails");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("density interrupted; its namespaces were deleted"),
        "{stderr}"
    );
    assert_eq!(
        density_namespaces(),
        1,
        "the interrupted run's namespace is gone"
    );

    let stop = kubemark(&state, &cwd, &["stop", c[0], c[1]]);
    assert!(stop.status.success(), "{}", text(&stop));

    // Both runs side by side in the dashboard, rendered by a real browser.
    let html = cwd.join("dashboard.html");
    let out = kubemark(
        &state,
        &cwd,
        &[
            "test",
            "report",
            report.to_str().unwrap(),
            cwd.join("tight.json").to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "report failed: {}", text(&out));
    let (dom, console) = chromium(&html, &tmp.path().join("dashboard.png"));
    assert!(dom.contains("<svg"), "no plots rendered");
    assert_eq!(
        dom.matches("data-run=").count(),
        2,
        "one summary row per run"
    );
    let p99 = run["podStartupMs"]["p99"].as_f64().unwrap();
    assert!(
        dom.contains(&format!("{p99:.0}")),
        "the p99 {p99:.0} from the JSON is not on the page"
    );
    assert!(
        dom.contains(">FAIL<") && dom.contains(">PASS<"),
        "verdicts of both runs are shown"
    );
    assert!(
        dom.contains("PodStartupLatency p99"),
        "the verdict table names the measurements"
    );
    let errors: Vec<&str> = console
        .lines()
        .filter(|l| l.contains("Uncaught") || (l.contains("CONSOLE") && l.contains("ERROR")))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

/// Renders `page` in headless Chromium (Debian's `chromium`); returns the DOM after scripts ran
/// and the browser's log. Also writes a screenshot (kept out of the repository).
fn chromium(page: &Path, screenshot: &Path) -> (String, String) {
    let bin = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is needed for the dashboard test (.ci/run installs Debian's chromium)");
    let profile = tempfile::tempdir().unwrap();
    let common = |cmd: &mut Command| {
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let url = format!("file://{}", page.display());
    let mut dump = Command::new(bin);
    common(&mut dump);
    let out = dump.arg("--dump-dom").arg(&url).output().unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut shot = Command::new(bin);
    common(&mut shot);
    let _ = shot
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--window-size=1280,1800")
        .arg(&url)
        .output();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kubemark bench` with a pod phase, small: the JSON holds what the table shows, the pods went
/// Running and away, and the request mix of the phase has the pod creates and the kubelets' status
/// writes in it.
#[test]
fn bench_with_a_pod_phase_writes_what_it_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench.json");
    let out = kubemark(
        tmp.path(),
        tmp.path(),
        &[
            "bench",
            "--nodes",
            "3",
            "--idle",
            "12",
            "--pods",
            "30",
            "--pod-rounds",
            "2",
            "--kube-api-qps",
            "40",
            "--kube-api-burst",
            "60",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("created after s") && stdout.contains("running after s"),
        "{stdout}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        (&v["kubeApiQps"], &v["kubeApiBurst"]),
        (&40.0.into(), &60.into())
    );
    let s = &v["samples"][0];
    assert_eq!(s["nodes"], 3);
    // Nothing of the control plane exited at 3 nodes (a restart would be counted here).
    assert_eq!(s["controlPlaneRestarts"], 0);
    assert_eq!(s["controlPlaneRestarted"], serde_json::json!([]));
    // Three idle nodes renew every 10 s (+4 % jitter), measured by their own renewTime.
    assert_eq!(s["leasesLateByRenewTime"], 0);
    // The idle phase begins at least 15 s after Ready, and sooner than the 300 s cap: three
    // nodes leave the controller-manager nothing to catch up with.
    let settle = s["settleSeconds"].as_f64().unwrap();
    assert!((15.0..60.0).contains(&settle), "{settle}");
    assert!(s["leaseMaxRenewStepSeconds"].as_f64().unwrap() < 15.0);
    // In 12 s every node renews at least once after the bench's watch first saw its Lease, and
    // at most twice; each step is the kubelet's interval.
    let steps = &s["leaseRenewSteps"];
    let count = steps["count"].as_u64().unwrap();
    assert!((3..=6).contains(&count), "{steps}");
    for q in ["p50", "p90", "p99", "max"] {
        let v = steps[q].as_f64().unwrap();
        assert!((9.5..15.0).contains(&v), "{q}: {steps}");
    }
    assert!(stdout.contains("lease renewals while idle"), "{stdout}");
    // The nodes' renewals queue where kubelets' do in API Priority and Fairness.
    let node_high = s["requestsPerNodeMinuteByPriority"]["node-high (system-node-high)"]
        .as_f64()
        .unwrap_or_default();
    // One or two renewals per node in the 12 s (a node-minute is five 12 s windows).
    assert!(
        (2.5..12.5).contains(&node_high),
        "{}",
        s["requestsPerNodeMinuteByPriority"]
    );
    assert!(s["rssBytesPerNode"].as_u64().unwrap() > 0);
    // RSS is sampled over the 12 s idle phase (at least one sample) and lies within its range;
    // the API server served the idle nodes (lease renewals at least).
    let (min, mean, max) = (
        s["rssBytesMin"].as_u64().unwrap(),
        s["rssBytes"].as_u64().unwrap(),
        s["rssBytesMax"].as_u64().unwrap(),
    );
    assert!(s["rssSamples"].as_u64().unwrap() >= 1);
    assert!(min > 0 && min <= mean && mean <= max, "{min} {mean} {max}");
    assert!(s["apiserverMillicoresPerNode"].as_f64().unwrap() > 0.0);
    let p = &s["pods"];
    assert_eq!(p["pods"], 30);
    assert!(p["secondsToRunning"].as_f64().unwrap() > 0.0);
    assert!(p["secondsToDeleted"].as_f64().unwrap() > 0.0);
    // The nodes' Leases are watched through the pod phase too: 30 pods leave three nodes'
    // renewals on time, and every node's Lease was seen.
    assert_eq!(
        (&p["leasesMissed"], &p["leasesLate"], &p["nodesLostReady"]),
        (&0.into(), &0.into(), &0.into())
    );
    let gap = p["leaseMaxGapSeconds"].as_f64().unwrap();
    assert!(gap > 0.0 && gap < 15.0, "{gap}");
    assert!(
        stdout.contains("node Leases during the pod phase"),
        "{stdout}"
    );
    let cpu = p["hollowCpuPercent"].as_f64().unwrap();
    let machine = p["machineCpuPercent"].as_f64().unwrap();
    assert!(cpu > 0.0 && cpu <= machine, "{cpu} of {machine}");
    let per_pod = p["requestsPerPod"].as_object().unwrap();
    let creates = per_pod["POST pods"].as_f64().unwrap();
    assert!(
        (0.99..=1.01).contains(&creates),
        "one create per pod: {creates}"
    );
    let per = |k: &str| per_pod.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0);
    assert!(
        (1.99..=2.01).contains(&per("DELETE pods")),
        "the bench's delete and the kubelet's final one: {per_pod:?}"
    );
    assert!(
        per("GET pods") >= per("PATCH pods/status") && per("PATCH pods/status") >= 2.0,
        "a GET before each status sync: {per_pod:?}"
    );
    let mix = p["requestsPerNodeMinute"].as_object().unwrap();
    for k in ["POST pods", "PATCH pods/status"] {
        assert!(
            mix.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0) > 0.0,
            "{k}: {mix:?}"
        );
    }
    // Two rounds on the same nodes (pods named per round), their means above.
    let rounds = p["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    let running: Vec<f64> = rounds
        .iter()
        .map(|r| r["secondsToRunning"].as_f64().unwrap())
        .collect();
    let mean = p["secondsToRunning"].as_f64().unwrap();
    assert!(
        (mean - (running[0] + running[1]) / 2.0).abs() < 1e-9,
        "{mean} vs {running:?}"
    );
}
