//! kubemark-core's test hooks (crash points, the conformance suite) stay out of production builds:
//! only dev-dependencies enable them, so `cargo build --release --workspace` resolves kubemark-core
//! without them while `cargo test` (whose kubemark binary the crash tests run) has them.

use std::process::Command;

/// kubemark-core's features as `cargo tree` resolves them for `edges`.
fn core_features(edges: &str) -> Vec<String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--workspace",
            "--manifest-path",
            manifest,
        ])
        .args([
            "--edges",
            edges,
            "--invert",
            "kubemark-core",
            "--prefix",
            "none",
        ])
        .output()
        .expect("cargo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut features: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("kubemark-core feature \""))
        .filter_map(|l| Some(l.split_once('"')?.0.to_string()))
        .collect();
    features.sort();
    features.dedup();
    features
}

#[test]
fn a_production_build_has_no_crash_points_or_conformance_suite() {
    // What `cargo build --release --workspace` resolves: no dev-dependencies.
    assert_eq!(
        core_features("features,normal,build"),
        ["default", "master", "workloads"]
    );
    // What `cargo test --workspace` resolves: the binary under test aborts where told.
    assert_eq!(
        core_features("features,normal,build,dev"),
        [
            "conformance",
            "crash-points",
            "default",
            "master",
            "workloads"
        ]
    );
}
