//! The aws provider against `moto` (an EC2 emulator from PyPI, `moto[server]`) on a loopback port:
//! the provider conformance suite, and resources it did not create are never touched.

use std::sync::Arc;

use kubemark_core::provider::conformance::Conformance;
use kubemark_core::provider::{InfrastructureSpec, MasterSpec};
use kubemark_provider_aws::{AwsProvider, AwsProviderBuilder};
use kubemark_tests::moto::Moto;

fn provider(moto: &Moto) -> AwsProvider {
    AwsProviderBuilder::new()
        .with_endpoint(&moto.url)
        .with_region("us-east-1")
        .with_static_credentials("testing", "testing")
        .build()
        .unwrap()
}

/// An AMI moto knows.
async fn some_ami(p: &AwsProvider) -> String {
    let out = p.client().await.describe_images().send().await.unwrap();
    out.images()
        .iter()
        .find_map(|i| i.image_id().map(String::from))
        .expect("moto lists images")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_provider_conformance_suite_against_moto() {
    let moto = Moto::start();
    let provider = provider(&moto);
    let spec = InfrastructureSpec {
        etcd_events_disk: Some(kubemark_core::provider::DiskSpec::etcd_events(10)),
        master: MasterSpec {
            image: Some(some_ami(&provider).await),
            machine_type: Some("t3.medium".into()),
            ssh_public_key: Some(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKubemarkTestKeyOnly test".into(),
            ),
            ..MasterSpec::default()
        },
        ..InfrastructureSpec::default()
    };
    Conformance::new(Arc::new(provider))
        .with_spec(spec)
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_resources_are_never_listed_or_deleted() {
    let moto = Moto::start();
    let provider = provider(&moto);
    let client = provider.client().await.clone();
    // Someone else's volume and address in the same account and region.
    let zone = client
        .describe_availability_zones()
        .send()
        .await
        .unwrap()
        .availability_zones()[0]
        .zone_name()
        .unwrap()
        .to_string();
    let volume = client
        .create_volume()
        .availability_zone(&zone)
        .size(1)
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string();
    let cluster = kubemark_core::provider::ClusterName::new("foreign-test").unwrap();
    use kubemark_core::provider::{Provider, ProviderExt};
    let spec = InfrastructureSpec {
        master: MasterSpec {
            image: Some(some_ami(&provider).await),
            ..MasterSpec::default()
        },
        ..InfrastructureSpec::default()
    };
    let infra = provider
        .ensure_infrastructure(&cluster, &spec)
        .await
        .unwrap();
    assert!(infra.master.is_some() && infra.static_ip.is_some() && infra.firewall.is_some());
    let owned = provider.list_owned(&cluster).await.unwrap();
    assert!(owned.iter().all(|r| r.id != volume), "{owned:?}");
    assert_eq!(owned.len(), 4, "master, disk, address, group: {owned:?}");
    let report = provider
        .teardown(&cluster, Default::default())
        .await
        .unwrap();
    assert_eq!(report.resources.len(), 4);
    assert!(provider.list_owned(&cluster).await.unwrap().is_empty());
    let still = client
        .describe_volumes()
        .volume_ids(&volume)
        .send()
        .await
        .unwrap();
    assert_eq!(still.volumes().len(), 1, "the foreign volume is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_with_the_aws_code_and_no_secret() {
    let moto = Moto::start();
    let provider = provider(&moto);
    let cluster = kubemark_core::provider::ClusterName::new("bad-disk").unwrap();
    use kubemark_core::provider::{Provider, ProviderExt};
    // A disk that does not exist: attaching it fails with EC2's own error code.
    let e = provider
        .ensure_master(
            &cluster,
            &MasterSpec {
                image: Some(some_ami(&provider).await),
                disks: vec![kubemark_core::provider::Disk {
                    role: kubemark_core::provider::Role::MasterDisk,
                    name: "missing".into(),
                    id: "vol-0123456789abcdef0".into(),
                    size_gb: 1,
                }],
                ..MasterSpec::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        e.context()
            .iter()
            .any(|(k, v)| *k == "code" && v.starts_with("InvalidVolume")),
        "{e}"
    );
    let e = e.to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("aws") && e.contains("attach_volume"), "{e}");
    assert!(!e.contains("testing"), "no credentials in errors: {e}");
    let unreachable = AwsProviderBuilder::new()
        .with_endpoint("http://127.0.0.1:9")
        .with_region("us-east-1")
        .with_static_credentials("testing", "testing")
        .build()
        .unwrap();
    let e = unreachable.list_owned(&cluster).await.unwrap_err();
    assert!(e.is_temporary(), "a connection failure is temporary: {e}");
    // The half-made master is found by its tags and removed.
    provider
        .teardown(&cluster, Default::default())
        .await
        .unwrap();
    assert!(provider.list_owned(&cluster).await.unwrap().is_empty());
}
