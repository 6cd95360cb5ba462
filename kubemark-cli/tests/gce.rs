//! `kubemark --provider gce` against the fake Compute Engine of the test tree: the CLI finds the
//! fake through its environment (`KUBEMARK_GCE_ENDPOINT`) and Application Default Credentials
//! (`GOOGLE_APPLICATION_CREDENTIALS`, whose token endpoint is the fake), exactly as it finds
//! Google in production.

mod common;

use std::process::Output;

use kubemark_core::provider::{ClusterName, InfrastructureSpec, Provider, ProviderExt};
use kubemark_provider_gce::{GceProvider, GceProviderBuilder};
use kubemark_tests::gce::{FakeGce, PROJECT, ZONE};

fn provider(fake: &FakeGce) -> GceProvider {
    let credentials =
        google_cloud_auth::credentials::user_account::Builder::new(fake.credentials_json())
            .build_access_token_credentials()
            .unwrap();
    GceProviderBuilder::new()
        .with_project(PROJECT)
        .with_zone(ZONE)
        .with_endpoint(&fake.url)
        .with_registry_endpoint(&fake.url)
        .with_credentials(credentials)
        .build()
        .unwrap()
}

/// Runs kubemark off the async workers, which serve the fake meanwhile.
async fn kubemark(
    fake: &FakeGce,
    dir: &std::path::Path,
    cwd: &std::path::Path,
    args: &[&str],
) -> Output {
    // Beside kubemark, where it looks for it: start runs nodes with it, image packs it.
    kubemark_tests::hollow_node();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kubemark"));
    cmd.args(args)
        .env("KUBEMARK_STATE_DIR", dir.join("state"))
        .envs(fake.env(dir))
        .env_remove("CLOUD_PROVIDER")
        .current_dir(cwd);
    tokio::task::spawn_blocking(move || cmd.output().expect("kubemark runs"))
        .await
        .unwrap()
}

fn ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_without_state_finds_and_deletes_by_labels_and_dry_run_deletes_nothing() {
    let fake = FakeGce::start().await;
    let p = provider(&fake);
    let leaky = ClusterName::new("leaky").unwrap();
    let other = ClusterName::new("other").unwrap();
    let spec = InfrastructureSpec::default();
    p.ensure_infrastructure(&leaky, &spec).await.unwrap();
    p.ensure_infrastructure(&other, &spec).await.unwrap();
    let before = p.list_owned(&leaky).await.unwrap().len();
    assert_eq!(before, 5, "master, disk, address, https rule, repository");
    let tmp = tempfile::tempdir().unwrap();
    let args = ["stop", "--cluster", "leaky", "--provider", "gce"];

    let text = ok(
        "dry run",
        &kubemark(
            &fake,
            tmp.path(),
            tmp.path(),
            &[&args[..], &["--dry-run"]].concat(),
        )
        .await,
    );
    for role in ["master", "firewall", "static-ip", "master-disk", "registry"] {
        assert!(
            text.contains(&format!("gce {role}:")),
            "{role} not listed: {text}"
        );
    }
    assert_eq!(
        p.list_owned(&leaky).await.unwrap().len(),
        before,
        "dry run deleted"
    );

    let text = ok(
        "stop",
        &kubemark(&fake, tmp.path(), tmp.path(), &args).await,
    );
    assert!(
        text.contains(&format!("deleted {before} resource(s)")),
        "{text}"
    );
    assert!(p.list_owned(&leaky).await.unwrap().is_empty());
    assert_eq!(
        p.list_owned(&other).await.unwrap().len(),
        before,
        "another cluster was touched"
    );
}

/// `kubemark start --provider gce` end to end on the fake: the fake creates the VM, disk, static
/// address (in 127.0.1.0/24, so the API server really listens on it), firewall rules and the
/// image repository; the "VM" is this machine's sshd (`sshAddress`), bootstrapped over real SSH;
/// hollow nodes become Ready against the API server on the static address; `kubemark stop`
/// leaves nothing labelled in the fake and nothing on the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_stop_with_the_gce_provider_on_the_fake() {
    let fake = FakeGce::start().await;
    let sshd = kubemark_tests::sshd::Sshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, root) = (tmp.path().join("cwd"), tmp.path().join("host"));
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let static_ip = fake.next_address();
    let config = tmp.path().join("kubemark.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: kubemark.io/v1alpha1\nkind: ClusterConfig\nprovider: gce\nnodes: 2\ntimeout: 120\n{}",
            common::master_on_sshd(
                &sshd,
                &root,
                &[
                    "size: e2-standard-2".into(),
                    "hostKeyCheck: strict".into(),
                    format!("sshAddress: 127.0.0.1:{}", sshd.port),
                    format!("bindAddress: {static_ip}"),
                ]
            )
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let out = kubemark(
        &fake,
        tmp.path(),
        &cwd,
        &["start", "--config", &config, "--cluster", "on-gce"],
    )
    .await;
    ok("start", &out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 hollow nodes Ready"));
    let instance = fake.get("instances", "kubemark-on-gce-master").unwrap();
    assert_eq!(
        instance["networkInterfaces"][0]["accessConfigs"][0]["natIP"],
        static_ip.as_str()
    );
    assert!(
        instance["machineType"]
            .as_str()
            .unwrap()
            .ends_with("/e2-standard-2")
    );
    assert!(
        instance["metadata"]["items"][0]["value"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}:ssh-", sshd.user)),
        "the key is installed for the configured user"
    );
    let cluster = ClusterName::new("on-gce").unwrap();
    let p = provider(&fake);
    let mut roles: Vec<String> = p
        .list_owned(&cluster)
        .await
        .unwrap()
        .iter()
        .map(|r| r.role.to_string())
        .collect();
    roles.sort();
    roles.dedup();
    assert_eq!(
        roles,
        ["firewall", "master", "master-disk", "registry", "static-ip"]
    );
    // The kubeconfig points at the static address: the API server listens there.
    let kubeconfig =
        std::fs::read_to_string(tmp.path().join("state/on-gce/admin.kubeconfig")).unwrap();
    assert!(
        kubeconfig.contains(&static_ip),
        "kubeconfig names the static IP"
    );

    ok(
        "stop",
        &kubemark(&fake, tmp.path(), &cwd, &["stop", "--cluster", "on-gce"]).await,
    );
    assert!(
        p.list_owned(&cluster).await.unwrap().is_empty(),
        "labelled resources left in the fake"
    );
    assert!(
        !root.join("etc-srv-kubernetes").exists(),
        "files left on the host"
    );
    assert!(kubemark_core::master::pids_mentioning(&root.display().to_string()).is_empty());
}

/// `kubemark image push --provider gce`: the cluster's Artifact Registry repository is made in the
/// fake, and the image goes to its Docker host (here Debian's docker-registry, which accepts only
/// `oauth2accesstoken` with the fake's OAuth token, as Artifact Registry does) with the
/// provider's token; the manifest pulled back has the printed digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_push_to_the_providers_registry_with_its_token() {
    let fake = FakeGce::start().await;
    let reg = kubemark_tests::registry::Registry::start_with("oauth2accesstoken", fake.token());
    let tmp = tempfile::tempdir().unwrap();
    let ca = reg.ca_file.display().to_string();
    kubemark_tests::hollow_node();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kubemark"));
    cmd.args(["image", "push", "--provider", "gce", "--cluster", "imgs"])
        .args(["--tag", "t1", "--ca-file", &ca])
        .envs(fake.env(tmp.path()))
        .env("KUBEMARK_GCE_REGISTRY_HOST", &reg.host)
        // Debug logs of every crate: the token must not be in them either.
        .env("KUBEMARK_LOG", "debug")
        .env_remove("KUBEMARK_REGISTRY_USERNAME")
        .env_remove("KUBEMARK_REGISTRY_PASSWORD");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let printed = ok("image push", &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEBUG"), "debug logs were on: {stderr}");
    assert!(!stderr.contains(fake.token()), "the token is never logged");
    let repository = format!("{}/{PROJECT}/kubemark-imgs-images/hollow-node", reg.host);
    let digest = printed
        .trim()
        .strip_prefix(&format!("{repository}@"))
        .unwrap_or_else(|| panic!("{printed}"))
        .to_string();
    let manifest = std::process::Command::new("curl")
        .args(["-sSf", "--cacert", &ca, "-u"])
        .arg(format!("oauth2accesstoken:{}", fake.token()))
        .args([
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            "-D",
            "-",
            "-o",
            "/dev/null",
        ])
        .arg(format!(
            "https://{}/v2/{PROJECT}/kubemark-imgs-images/hollow-node/manifests/t1",
            reg.host
        ))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&manifest.stdout).to_lowercase();
    assert!(
        headers.contains(&format!("docker-content-digest: {digest}")),
        "{headers}"
    );
    let repo = fake.get("repositories", "kubemark-imgs-images").unwrap();
    assert_eq!(repo["labels"]["kubemark_cluster"], "imgs");

    // A reference and --provider together are refused.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubemark"))
        .args(["image", "push", "x/y:z", "--provider", "gce"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"));
}
