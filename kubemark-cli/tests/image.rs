//! `kubemark image push` against a real registry (Debian's docker-registry, TLS and htpasswd):
//! the manifest pulled back has the digest we computed, the layer holds a binary that runs on
//! its own, a re-push is idempotent, and a wrong password is one clear line without secrets.

use std::process::{Command, Output};

use kubemark_tests::registry::Registry;

fn kubemark(args: &[&str], env: &[(&str, &str)]) -> Output {
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
    assert_eq!(config["config"]["Entrypoint"][0], "/usr/local/bin/kubemark");

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
            .args(["/usr/local/bin/kubemark", "--version"])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(String::from_utf8_lossy(&run.stdout).contains("kubemark"));
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
