//! The leak finder against moto: without any state, `kubemark stop --provider aws` finds what is
//! tagged as the cluster's, `--dry-run` lists it and deletes nothing, and untagged or other
//! clusters' resources are left alone.

mod common;

use std::process::{Command, Output};

use kubemark_core::provider::{ClusterName, InfrastructureSpec, MasterSpec, Provider, ProviderExt};
use kubemark_provider_aws::AwsProviderBuilder;
use kubemark_tests::moto::Moto;

fn kubemark(moto: &Moto, state: &std::path::Path, args: &[&str]) -> Output {
    // Beside kubemark, where it looks for it: start runs nodes with it, image packs it.
    kubemark_tests::hollow_node();
    Command::new(env!("CARGO_BIN_EXE_kubemark"))
        .args(args)
        .env("KUBEMARK_STATE_DIR", state)
        .envs(moto.env())
        .env_remove("CLOUD_PROVIDER")
        .output()
        .expect("kubemark runs")
}

/// The aws provider on `moto`, and an AMI moto knows.
async fn provider_and_ami(moto: &Moto) -> (kubemark_provider_aws::AwsProvider, String) {
    let provider = AwsProviderBuilder::new()
        .with_endpoint(&moto.url)
        .with_region("us-east-1")
        .with_static_credentials("testing", "testing")
        .build()
        .unwrap();
    let ami = provider
        .client()
        .await
        .describe_images()
        .send()
        .await
        .unwrap()
        .images()[0]
        .image_id()
        .unwrap()
        .to_string();
    (provider, ami)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_without_state_finds_and_deletes_by_tags_and_dry_run_deletes_nothing() {
    let moto = Moto::start();
    let (provider, ami) = provider_and_ami(&moto).await;
    let spec = InfrastructureSpec {
        master: MasterSpec {
            image: Some(ami),
            ..MasterSpec::default()
        },
        ..InfrastructureSpec::default()
    };
    // A crashed start left its resources; another cluster's must survive.
    let leaky = ClusterName::new("leaky").unwrap();
    let other = ClusterName::new("other").unwrap();
    provider.ensure_infrastructure(&leaky, &spec).await.unwrap();
    provider.ensure_infrastructure(&other, &spec).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();

    let out = kubemark(
        &moto,
        tmp.path(),
        &[
            "stop",
            "--cluster",
            "leaky",
            "--provider",
            "aws",
            "--dry-run",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for role in ["master", "firewall", "static-ip", "master-disk", "registry"] {
        assert!(
            text.contains(&format!("aws {role}:")),
            "{role} not listed: {text}"
        );
    }
    assert_eq!(
        provider.list_owned(&leaky).await.unwrap().len(),
        5,
        "dry run deleted something"
    );

    let out = kubemark(
        &moto,
        tmp.path(),
        &["stop", "--cluster", "leaky", "--provider", "aws"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted 5 resource(s)"));
    assert!(provider.list_owned(&leaky).await.unwrap().is_empty());
    assert_eq!(
        provider.list_owned(&other).await.unwrap().len(),
        5,
        "another cluster was touched"
    );
    provider.teardown(&other, Default::default()).await.unwrap();
}

/// `kubemark start --provider aws` end to end on the emulator: moto creates the VM, disk, address
/// and security group; the "VM" is reached at this machine's sshd (`sshAddress`), bootstrapped
/// over real SSH, hollow nodes Ready; `kubemark stop` leaves no tagged resource in moto and
/// nothing on the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_stop_with_the_aws_provider_on_the_emulator() {
    let moto = Moto::start();
    let sshd = kubemark_tests::sshd::Sshd::start();
    let (provider, ami) = provider_and_ami(&moto).await;
    let tmp = tempfile::tempdir().unwrap();
    let (state, cwd, root) = (
        tmp.path().join("state"),
        tmp.path().join("cwd"),
        tmp.path().join("host"),
    );
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let config = tmp.path().join("kubemark.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: kubemark.io/v1alpha1\nkind: ClusterConfig\nprovider: aws\nnodes: 2\ntimeout: 120\n{}",
            common::master_on_sshd(
                &sshd,
                &root,
                &[
                    "size: t3.large".into(),
                    "hostKeyCheck: strict".into(),
                    format!("sshAddress: 127.0.0.1:{}", sshd.port),
                    "bindAddress: 127.0.0.1".into(),
                    "advertiseAddress: 127.0.0.1".into(),
                ]
            )
        ),
    )
    .unwrap();
    kubemark_tests::hollow_node();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kubemark"))
            .args(args)
            .env("KUBEMARK_STATE_DIR", &state)
            .env("KUBEMARK_AWS_AMI", &ami)
            .envs(moto.env())
            .env_remove("CLOUD_PROVIDER")
            .current_dir(&cwd)
            .output()
            .unwrap()
    };
    let out = run(&[
        "start",
        "--config",
        config.to_str().unwrap(),
        "--cluster",
        "on-aws",
    ]);
    assert!(
        out.status.success(),
        "start: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let cluster = ClusterName::new("on-aws").unwrap();
    let owned = provider.list_owned(&cluster).await.unwrap();
    let mut roles: Vec<String> = owned.iter().map(|r| r.role.to_string()).collect();
    roles.sort();
    // The master is the instance and its imported key pair.
    assert_eq!(
        roles,
        [
            "firewall",
            "master",
            "master",
            "master-disk",
            "registry",
            "static-ip"
        ],
        "{owned:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 hollow nodes Ready"));

    let out = run(&["stop", "--cluster", "on-aws"]);
    assert!(
        out.status.success(),
        "stop: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        provider.list_owned(&cluster).await.unwrap().is_empty(),
        "tagged resources left in moto"
    );
    assert!(
        !root.join("etc-srv-kubernetes").exists(),
        "files left on the host"
    );
    assert!(kubemark_core::master::pids_mentioning(&root.display().to_string()).is_empty());
}

/// `kubemark image push --provider aws`: the cluster's ECR repository is made in moto and the image
/// goes to its Docker host (here Debian's docker-registry, accepting only ECR's token user and
/// password as moto hands them out) with the token from `GetAuthorizationToken`.
#[test]
fn image_push_to_the_ecr_repository_with_its_token() {
    let moto = Moto::start();
    // moto's token for its fixed account: `AWS:123456789012-auth-token`.
    let reg = kubemark_tests::registry::Registry::start_with("AWS", "123456789012-auth-token");
    let tmp = tempfile::tempdir().unwrap();
    kubemark_tests::hollow_node();
    let out = Command::new(env!("CARGO_BIN_EXE_kubemark"))
        .args(["image", "push", "--provider", "aws", "--cluster", "imgs"])
        .args(["--ca-file", reg.ca_file.to_str().unwrap()])
        .env("KUBEMARK_STATE_DIR", tmp.path())
        .env("KUBEMARK_AWS_REGISTRY_HOST", &reg.host)
        .env("KUBEMARK_LOG", "debug")
        .envs(moto.env())
        .env_remove("KUBEMARK_REGISTRY_USERNAME")
        .env_remove("KUBEMARK_REGISTRY_PASSWORD")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.starts_with(&format!("{}/kubemark-imgs/hollow-node@sha256:", reg.host)),
        "{printed}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEBUG"), "debug logs were on");
    assert!(
        !stderr.contains("auth-token") && !stderr.contains("QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu"),
        "ECR's token is never logged"
    );
    let tags = Command::new("curl")
        .args(["-sSf", "--cacert", reg.ca_file.to_str().unwrap()])
        .args(["-u", "AWS:123456789012-auth-token"])
        .arg(format!(
            "https://{}/v2/kubemark-imgs/hollow-node/tags/list",
            reg.host
        ))
        .output()
        .unwrap();
    let tags = String::from_utf8_lossy(&tags.stdout);
    assert!(
        tags.contains(concat!("v", env!("CARGO_PKG_VERSION"))),
        "{tags}"
    );
}
