//! The aws provider against `moto` (an EC2 emulator from PyPI, `moto[server]`) on a loopback port:
//! the provider conformance suite, and resources it did not create are never touched.

use std::sync::Arc;

use kubemark_core::provider::conformance::Conformance;
use kubemark_core::provider::{InfrastructureSpec, MasterSpec};
use kubemark_provider_aws::{AwsProvider, AwsProviderBuilder};
use kubemark_tests::moto::Moto;

/// A real OpenSSH public key (moto checks the format); nobody holds its private half.
const TEST_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBIZJLqkEZWfiLcVVlsyxYKqJhCd6r+Y4BEIgDnWy4wl kubemark-test";

fn provider(moto: &Moto) -> AwsProvider {
    with_config(moto, Default::default())
}

fn with_config(moto: &Moto, config: kubemark_provider_aws::AwsConfig) -> AwsProvider {
    AwsProviderBuilder::new()
        .with_config(config)
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
    // Credentials come from the SDK's chain, not settings: the declaration is checked here, the
    // suite runs on the provider built with moto's static credentials.
    let settings = kubemark_core::registry::ProviderSettings::new()
        .with("region", "us-east-1")
        .with("endpoint", moto.url.clone());
    kubemark_core::registry::conformance::check_entry(&kubemark_provider_aws::AwsEntry, &settings);
    let provider = provider(&moto);
    let spec = InfrastructureSpec {
        etcd_events_disk: Some(kubemark_core::provider::DiskSpec::etcd_events(10)),
        master: MasterSpec {
            image: Some(some_ami(&provider).await),
            machine_type: Some("t3.medium".into()),
            ssh_public_key: Some(TEST_KEY.into()),
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
    assert_eq!(
        owned.len(),
        5,
        "master, disk, address, group, repository: {owned:?}"
    );
    let report = provider
        .teardown(&cluster, Default::default())
        .await
        .unwrap();
    assert_eq!(report.resources.len(), 5);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ami_lookup_key_pair_and_ecr_repository() {
    use kubemark_core::provider::{ErrorKind, Provider, ProviderExt};
    let moto = Moto::start();
    // moto carries Canonical's Ubuntu images, not Debian's: look those up instead.
    let mut config = kubemark_provider_aws::AwsConfig::default();
    config.ami_owner = Some("099720109477".into());
    config.ami_name = Some("ubuntu/images/hvm-ssd/ubuntu-*-amd64-server-*".into());
    let p = with_config(&moto, config);
    let ec2 = p.client().await.clone();
    let mut ubuntu: Vec<(String, String)> = ec2
        .describe_images()
        .owners("099720109477")
        .send()
        .await
        .unwrap()
        .images()
        .iter()
        .filter(|i| {
            let n = i.name().unwrap_or_default();
            n.starts_with("ubuntu/images/hvm-ssd/ubuntu-") && n.contains("-amd64-server-")
        })
        .map(|i| {
            (
                i.creation_date().unwrap().to_string(),
                i.image_id().unwrap().to_string(),
            )
        })
        .collect();
    ubuntu.sort();
    let newest = ubuntu.last().expect("moto lists Ubuntu images").1.clone();

    let cluster = kubemark_core::provider::ClusterName::new("lookup").unwrap();
    let key = TEST_KEY.to_string();
    let spec = InfrastructureSpec {
        master: MasterSpec {
            ssh_public_key: Some(key),
            ..MasterSpec::default()
        },
        ..InfrastructureSpec::default()
    };
    let infra = p.ensure_infrastructure(&cluster, &spec).await.unwrap();
    let vm = infra.master.unwrap();
    let described = ec2
        .describe_instances()
        .instance_ids(&vm.id)
        .send()
        .await
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    assert_eq!(
        instance.image_id(),
        Some(newest.as_str()),
        "the newest match"
    );
    assert_eq!(instance.key_name(), Some("kubemark-lookup-master"));
    let keys = ec2.describe_key_pairs().send().await.unwrap();
    let ours = keys
        .key_pairs()
        .iter()
        .find(|k| k.key_name() == Some("kubemark-lookup-master"))
        .expect("the key pair was imported");
    assert!(
        ours.tags()
            .iter()
            .any(|t| t.key() == Some("kubemark.io/cluster") && t.value() == Some("lookup"))
    );

    let registry = infra.registry.unwrap();
    assert_eq!(
        registry.repository,
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/kubemark-lookup/hollow-node"
    );
    let creds = registry.credentials.unwrap();
    assert_eq!(creds.username, "AWS");
    assert!(!creds.password.is_empty());
    assert!(!format!("{creds:?}").contains(&creds.password));

    let owned = p.list_owned(&cluster).await.unwrap();
    // instance + key pair, disk, address, group, repository.
    assert_eq!(owned.len(), 6, "{owned:#?}");
    p.teardown(&cluster, Default::default()).await.unwrap();
    assert!(p.list_owned(&cluster).await.unwrap().is_empty());
    let keys = ec2.describe_key_pairs().send().await.unwrap();
    assert!(
        keys.key_pairs()
            .iter()
            .all(|k| k.key_name() != Some("kubemark-lookup-master"))
    );

    // Nothing matches: one line naming the setting.
    let mut config = kubemark_provider_aws::AwsConfig::default();
    config.ami_name = Some("no-such-image-*".into());
    let none = with_config(&moto, config);
    let e = none
        .ensure_master(&cluster, &MasterSpec::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
    assert!(e.to_string().contains("KUBEMARK_AWS_AMI"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_of_its_own_when_asked_tagged_and_torn_down_last() {
    use kubemark_core::provider::{ClusterName, Provider, ProviderExt, Role};
    let moto = Moto::start();
    let plain = provider(&moto);
    let ami = some_ami(&plain).await;
    let mut config = kubemark_provider_aws::AwsConfig::default();
    config.vpc = Some("create".into());
    let p = with_config(&moto, config);
    let ec2 = p.client().await.clone();
    let vpcs_before = ec2.describe_vpcs().send().await.unwrap().vpcs().len();
    let cluster = ClusterName::new("ownnet").unwrap();
    let spec = InfrastructureSpec {
        master: MasterSpec {
            image: Some(ami),
            ..MasterSpec::default()
        },
        ..InfrastructureSpec::default()
    };
    let first = p.ensure_infrastructure(&cluster, &spec).await.unwrap();
    let second = p.ensure_infrastructure(&cluster, &spec).await.unwrap();
    assert_eq!(first, second, "get-or-create, also for the network");
    let owned = p.list_owned(&cluster).await.unwrap();
    let network: Vec<&str> = owned
        .iter()
        .filter(|r| r.role == Role::Network)
        .map(|r| r.id.split('-').next().unwrap())
        .collect();
    assert_eq!(network, ["subnet", "igw", "vpc"], "{owned:#?}");
    let vpc = owned
        .iter()
        .find(|r| r.id.starts_with("vpc-"))
        .unwrap()
        .id
        .clone();
    let instance = ec2
        .describe_instances()
        .instance_ids(&first.master.as_ref().unwrap().id)
        .send()
        .await
        .unwrap();
    let instance = &instance.reservations()[0].instances()[0];
    assert_eq!(instance.vpc_id(), Some(vpc.as_str()), "the master is in it");
    let groups = ec2
        .describe_security_groups()
        .group_ids(&first.firewall.as_ref().unwrap().name)
        .send()
        .await
        .unwrap();
    assert_eq!(groups.security_groups()[0].vpc_id(), Some(vpc.as_str()));

    let report = p.teardown(&cluster, Default::default()).await.unwrap();
    assert_eq!(
        report.resources.last().map(|r| r.role),
        Some(Role::Network),
        "the network goes last"
    );
    assert!(p.list_owned(&cluster).await.unwrap().is_empty());
    assert_eq!(
        ec2.describe_vpcs().send().await.unwrap().vpcs().len(),
        vpcs_before,
        "the default VPC stays, ours is gone"
    );

    // A start that crashed right after the firewall (network + group made) is cleaned up too.
    p.ensure_firewall(&cluster, &Default::default())
        .await
        .unwrap();
    assert_eq!(p.list_owned(&cluster).await.unwrap().len(), 4);
    p.teardown(&cluster, Default::default()).await.unwrap();
    assert!(p.list_owned(&cluster).await.unwrap().is_empty());

    let mut config = kubemark_provider_aws::AwsConfig::default();
    config.vpc = Some("mine".into());
    let bad = with_config(&moto, config);
    let e = bad
        .ensure_firewall(&cluster, &Default::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("KUBEMARK_AWS_VPC"), "{e}");
}
