//! The leak finder against moto: without any state, `kubemark stop --provider aws` finds what is
//! tagged as the cluster's, `--dry-run` lists it and deletes nothing, and untagged or other
//! clusters' resources are left alone.

use std::process::{Command, Output};

use kubemark_core::provider::{ClusterName, InfrastructureSpec, MasterSpec, Provider, ProviderExt};
use kubemark_provider_aws::AwsProviderBuilder;
use kubemark_tests::moto::Moto;

fn kubemark(moto: &Moto, state: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubemark"))
        .args(args)
        .env("KUBEMARK_STATE_DIR", state)
        .envs(moto.env())
        .env_remove("CLOUD_PROVIDER")
        .output()
        .expect("kubemark runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_without_state_finds_and_deletes_by_tags_and_dry_run_deletes_nothing() {
    let moto = Moto::start();
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
    for role in ["master", "firewall", "static-ip", "master-disk"] {
        assert!(
            text.contains(&format!("aws {role}:")),
            "{role} not listed: {text}"
        );
    }
    assert_eq!(
        provider.list_owned(&leaky).await.unwrap().len(),
        4,
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
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted 4 resource(s)"));
    assert!(provider.list_owned(&leaky).await.unwrap().is_empty());
    assert_eq!(
        provider.list_owned(&other).await.unwrap().len(),
        4,
        "another cluster was touched"
    );
    provider.teardown(&other, Default::default()).await.unwrap();
}
