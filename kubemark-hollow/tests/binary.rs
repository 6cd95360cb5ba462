//! The `hollow-node` binary, the one artifact that runs hollow nodes (locally, in the image, in
//! the StatefulSet): it takes upstream's flags, and it links no cloud SDK, SSH or image code.

use std::process::Command;

#[test]
fn hollow_node_takes_upstreams_flags_and_reports_bad_input_in_one_line() {
    let version = Command::new(env!("CARGO_BIN_EXE_hollow-node"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("hollow-node "));
    // Upstream's hollow-proxy container command line (kubemark's hollow-node template), with a
    // kubeconfig that is not there: the flags parse, and the missing file is the one error.
    let out = Command::new(env!("CARGO_BIN_EXE_hollow-node"))
        .args([
            "--morph=proxy",
            "--name=hollow-node-0",
            "--v=2",
            "--use-real-proxier=false",
            "--proxier-sync-period=30s",
            "--kube-api-content-type=application/vnd.kubernetes.protobuf",
            "--kubeconfig=/nonexistent/kubeproxy.kubeconfig",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(
        errors,
        ["error: --kubeconfig /nonexistent/kubeproxy.kubeconfig does not exist"],
        "{stderr}"
    );
}

/// What `cargo install kubemark-hollow` (or `cargo build -p kubemark-hollow`) compiles.
#[test]
fn the_hollow_crate_takes_no_cloud_sdk_ssh_download_or_image_code() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--manifest-path", manifest])
        .args([
            "-p",
            "kubemark-hollow",
            "--edges",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = text.lines().filter_map(|l| l.split(' ').next()).collect();
    assert!(crates.contains(&"kubemark-core"), "{text}");
    assert!(crates.contains(&"tikv-jemallocator"), "{text}");
    let heavy: Vec<&&str> = crates
        .iter()
        .filter(|c| {
            ["openssh", "reqwest", "tar", "flate2", "kubemark-provider-"]
                .iter()
                .any(|h| c == &h || (h.ends_with('-') && c.starts_with(h)))
                // The SDKs (aws-lc-rs is rustls' crypto provider, not the SDK).
                || ["aws-sdk-", "aws-smithy-", "aws-config", "aws-runtime", "google-cloud-"]
                    .iter()
                    .any(|p| c.starts_with(p))
        })
        .collect();
    assert!(heavy.is_empty(), "kubemark-hollow depends on {heavy:?}");
}
