//! `kubemark image push` against a real registry (Debian's docker-registry, TLS and htpasswd):
//! the manifest pulled back has the digest we computed, the layer holds a binary that runs on
//! its own, a re-push is idempotent, and a wrong password is one clear line without secrets.

use std::process::{Command, Output};

use kubemark_tests::registry::Registry;

fn kubemark(args: &[&str], env: &[(&str, &str)]) -> Output {
    // The image packs the hollow-node beside kubemark.
    kubemark_tests::hollow_node();
    Command::new(env!("CARGO_BIN_EXE_kubemark"))
        .args(args)
        .env_remove("KUBEMARK_REGISTRY_USERNAME")
        .env_remove("KUBEMARK_REGISTRY_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .expect("kubemark runs")
}

fn curl(reg: &Registry, path: &str, accept: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sSf", "--cacert"])
        .arg(&reg.ca_file)
        .args(["-u", &format!("{}:{}", reg.user, reg.password)])
        .args(["-H", &format!("Accept: {accept}")])
        .arg(format!("https://{}/v2/{path}", reg.host))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

#[test]
fn push_pull_back_and_run_the_image() {
    let reg = Registry::start();
    let reference = format!("{}/kubemark/hollow-node:test", reg.host);
    let ca = reg.ca_file.to_str().unwrap();
    let creds = [
        ("KUBEMARK_REGISTRY_USERNAME", reg.user.as_str()),
        ("KUBEMARK_REGISTRY_PASSWORD", reg.password.as_str()),
    ];
    let out = kubemark(&["image", "push", &reference, "--ca-file", ca], &creds);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let digest = printed
        .split_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| panic!("no digest in {printed:?}"));

    // Pulled back by another client: same digest, and the blobs it names are what they claim.
    let manifest = curl(
        &reg,
        "kubemark/hollow-node/manifests/test",
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(
        sha256(&manifest),
        digest,
        "the stored manifest is the one we computed"
    );
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let layer_digest = m["layers"][0]["digest"].as_str().unwrap();
    let layer = curl(
        &reg,
        &format!("kubemark/hollow-node/blobs/{layer_digest}"),
        "*/*",
    );
    assert_eq!(sha256(&layer), layer_digest);
    let config = curl(
        &reg,
        &format!(
            "kubemark/hollow-node/blobs/{}",
            m["config"]["digest"].as_str().unwrap()
        ),
        "*/*",
    );
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(
        config["config"]["Entrypoint"][0],
        "/usr/local/bin/hollow-node"
    );

    // The layer is a root filesystem on its own: the binary runs in it with nothing else.
    let root = reg.dir().join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(&layer[..]))
        .unpack(&root)
        .unwrap();
    let uid = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    if uid.trim() == "0" {
        let run = Command::new("chroot")
            .arg(&root)
            .args(["/usr/local/bin/hollow-node", "--version"])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(String::from_utf8_lossy(&run.stdout).starts_with("hollow-node "));
    } else {
        panic!("this test runs the image's binary under chroot and needs root (CI runs as root)");
    }

    // Idempotent: the same binary gives the same digest, blobs are not uploaded again.
    let again = kubemark(&["image", "push", &reference, "--ca-file", ca], &creds);
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), printed);

    // A wrong password: one line, non-zero, no secret in the output.
    let wrong = [
        ("KUBEMARK_REGISTRY_USERNAME", reg.user.as_str()),
        ("KUBEMARK_REGISTRY_PASSWORD", "not-the-password"),
    ];
    let out = kubemark(&["image", "push", &reference, "--ca-file", ca], &wrong);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("401"), "{stderr}");
    assert!(
        !stderr.contains("not-the-password") && !stderr.contains(&reg.password),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{stderr}"
    );

    // Without our CA the registry's certificate is refused: TLS is checked, never skipped.
    let out = kubemark(&["image", "push", &reference], &creds);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("registry 127.0.0.1"));
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The image's config from an OCI layout `kubemark image build --layout` wrote, after checking
/// the layout: every blob hashes to its name, index.json names the manifest by `tag`.
fn layout_config(dir: &std::path::Path, tag: &str) -> serde_json::Value {
    assert_eq!(
        read_json(&dir.join("oci-layout"))["imageLayoutVersion"],
        "1.0.0"
    );
    let blobs = dir.join("blobs").join("sha256");
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        assert_eq!(
            sha256(&std::fs::read(entry.path()).unwrap()),
            format!("sha256:{name}")
        );
    }
    let blob = |digest: &serde_json::Value| {
        blobs.join(digest.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let index = read_json(&dir.join("index.json"));
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        tag
    );
    let manifest = read_json(&blob(&entry["digest"]));
    assert_eq!(
        entry["size"].as_u64().unwrap(),
        std::fs::metadata(blob(&entry["digest"])).unwrap().len()
    );
    let layer = &manifest["layers"][0];
    assert!(blob(&layer["digest"]).is_file(), "{manifest}");
    read_json(&blob(&manifest["config"]["digest"]))
}

#[test]
fn image_build_writes_an_oci_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("oci");
    let out = kubemark(
        &[
            "image",
            "build",
            "--layout",
            dir.to_str().unwrap(),
            "--tag",
            "v9",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = layout_config(&dir, "v9");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/hollow-node"]),
        "{config}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(dir.to_str().unwrap()),
        "prints the layout"
    );
}

/// No Docker daemon here, so the Dockerfile is checked, not built: it builds the `hollow-node`
/// binary of this workspace with the toolchain the workspace asks for, and its image runs it as
/// the daemonless image does (same path, entrypoint, user and working directory).
#[test]
fn the_dockerfile_matches_the_workspace_and_the_daemonless_image() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let rust = workspace
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        lines[0].starts_with(&format!("FROM rust:{rust}-")) && lines[0].ends_with(" AS build"),
        "the build stage uses the workspace's Rust {rust}: {}",
        lines[0]
    );
    assert!(
        root.join("Cargo.lock").is_file(),
        "--locked needs Cargo.lock"
    );
    let hollow = std::fs::read_to_string(root.join("kubemark-hollow/Cargo.toml")).unwrap();
    assert!(
        hollow.contains("name = \"kubemark-hollow\"") && hollow.contains("name = \"hollow-node\""),
        "package kubemark-hollow with bin hollow-node"
    );
    let expected = [
        "RUN cargo build --release --locked -p kubemark-hollow --bin hollow-node",
        "COPY --from=build /src/target/release/hollow-node /usr/local/bin/hollow-node",
        "WORKDIR /src",
    ];
    for line in expected {
        assert!(lines.contains(&line), "Dockerfile lacks {line:?}");
    }
    // The final stage against the config of the image `kubemark image build` makes.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("oci");
    let out = kubemark(&["image", "build", "--layout", dir.to_str().unwrap()], &[]);
    assert!(out.status.success());
    let config = &layout_config(&dir, "latest")["config"];
    let last = &lines[lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap()..];
    let entrypoint = serde_json::to_string(&config["Entrypoint"]).unwrap();
    for line in [
        format!("ENTRYPOINT {}", entrypoint.replace(',', ", ")),
        format!("USER {}", config["User"].as_str().unwrap()),
        format!("WORKDIR {}", config["WorkingDir"].as_str().unwrap()),
    ] {
        assert!(
            last.contains(&line.as_str()),
            "final stage lacks {line:?}: {last:?}"
        );
    }
}
