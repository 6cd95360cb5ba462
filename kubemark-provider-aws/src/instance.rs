//! The master instance: launched in the master's availability zone with the cluster's security
//! group, the operator's SSH key imported as a tagged key pair, its Elastic IP associated and its
//! volumes attached. Without an AMI it takes the newest Debian 12 image (or the configured
//! owner's image by name).

use std::time::{Duration, Instant};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    Filter, Instance, InstanceStateName, InstanceType, Placement, ResourceType,
};
use kubemark_core::provider::{
    ClusterName, Error, ErrorKind, MasterSpec, MasterVm, ResourceRef, Result, Role,
};

use crate::error::{map, unexpected};
use crate::{AwsConfig, PROVIDER_NAME, tags};

/// Instances that exist or are coming up (not terminated or shutting down).
async fn find(client: &Client, cluster: &ClusterName) -> Result<Vec<Instance>> {
    let mut filters = tags::filters(cluster, Some(Role::Master));
    filters.push(
        Filter::builder()
            .name("instance-state-name")
            .values("pending")
            .values("running")
            .values("stopping")
            .values("stopped")
            .build(),
    );
    let out = client
        .describe_instances()
        .set_filters(Some(filters))
        .send()
        .await
        .map_err(|e| map("describe_instances", e))?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances().iter().cloned())
        .collect())
}

fn to_vm(i: &Instance, user: &str) -> MasterVm {
    let id = i.instance_id().unwrap_or_default().to_string();
    MasterVm::new(
        tags::name_of(i.tags()).unwrap_or_else(|| id.clone()),
        id,
        i.public_ip_address().and_then(|a| a.parse().ok()),
        i.private_ip_address().and_then(|a| a.parse().ok()),
        user,
    )
}

/// Debian's AWS account, which publishes the official Debian AMIs.
const DEBIAN_OWNER: &str = "136693071363";

/// The newest available image of the configured owner whose name matches the pattern.
async fn lookup_ami(client: &Client, config: &AwsConfig) -> Result<String> {
    let owner = config.ami_owner.as_deref().unwrap_or(DEBIAN_OWNER);
    let name = config.ami_name.as_deref().unwrap_or("debian-12-amd64-*");
    let out = client
        .describe_images()
        .owners(owner)
        .filters(Filter::builder().name("name").values(name).build())
        .filters(Filter::builder().name("state").values("available").build())
        .send()
        .await
        .map_err(|e| map("describe_images", e))?;
    let mut images: Vec<_> = out
        .images()
        .iter()
        .filter_map(|i| Some((i.creation_date()?.to_string(), i.image_id()?.to_string())))
        .collect();
    // ISO 8601 dates sort as text.
    images.sort();
    images.pop().map(|(_, id)| id).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidConfig,
            PROVIDER_NAME,
            "describe_images",
            format!(
                "no image named {name} of owner {owner} in the region: set KUBEMARK_AWS_AMI (or KUBEMARK_AWS_AMI_OWNER and KUBEMARK_AWS_AMI_NAME)"
            ),
        )
    })
}

fn key_name(cluster: &ClusterName) -> String {
    format!("kubemark-{cluster}-master")
}

/// kubemark's key pairs of `cluster`.
async fn find_keys(
    client: &Client,
    cluster: &ClusterName,
) -> Result<Vec<aws_sdk_ec2::types::KeyPairInfo>> {
    let out = client
        .describe_key_pairs()
        .set_filters(Some(tags::filters(cluster, Some(Role::Master))))
        .send()
        .await
        .map_err(|e| map("describe_key_pairs", e))?;
    Ok(out.key_pairs().to_vec())
}

/// Imports `key` as the cluster's key pair, replacing one a crashed start left (no instance uses
/// it yet, and its key may be another one).
async fn import_key(client: &Client, cluster: &ClusterName, key: &str) -> Result<String> {
    for old in find_keys(client, cluster).await? {
        if let Some(name) = old.key_name() {
            delete_key(client, name).await?;
        }
    }
    let name = key_name(cluster);
    client
        .import_key_pair()
        .key_name(&name)
        .public_key_material(aws_sdk_ec2::primitives::Blob::new(key.trim().as_bytes()))
        .tag_specifications(tags::spec(ResourceType::KeyPair, cluster, Role::Master))
        .send()
        .await
        .map_err(|e| map("import_key_pair", e))?;
    Ok(name)
}

/// Deletes a key pair by name (which EC2 and its emulators all accept; moto ignores ids).
async fn delete_key(client: &Client, name: &str) -> Result<()> {
    match client.delete_key_pair().key_name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) => match map("delete_key_pair", e) {
            e if e.kind() == ErrorKind::NotFound => Ok(()),
            e => Err(e),
        },
    }
}

async fn wait_running(client: &Client, id: &str) -> Result<Instance> {
    let start = Instant::now();
    loop {
        let out = client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| map("describe_instances", e))?;
        if let Some(i) = out.reservations().iter().flat_map(|r| r.instances()).next() {
            match i.state().and_then(|s| s.name()) {
                Some(InstanceStateName::Running) => return Ok(i.clone()),
                Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown) => {
                    return Err(unexpected(
                        "run_instances",
                        format!("instance {id} terminated while starting"),
                    ));
                }
                _ => {}
            }
        }
        if start.elapsed() > Duration::from_secs(300) {
            return Err(Error::new(
                ErrorKind::Temporary,
                PROVIDER_NAME,
                "run_instances",
                format!("instance {id} not running after 300s"),
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

pub(crate) async fn ensure(
    client: &Client,
    cluster: &ClusterName,
    spec: &MasterSpec,
    config: &AwsConfig,
    zone: &str,
    subnet: Option<&str>,
) -> Result<MasterVm> {
    let user = spec
        .ssh_user
        .as_deref()
        .or(config.ssh_user.as_deref())
        .unwrap_or("admin");
    if let Some(i) = find(client, cluster).await?.first() {
        return Ok(to_vm(i, user));
    }
    let image = match spec.image.clone().or_else(|| config.ami.clone()) {
        Some(i) => i,
        None => lookup_ami(client, config).await?,
    };
    let kind = spec
        .machine_type
        .clone()
        .or_else(|| config.instance_type.clone())
        .unwrap_or_else(|| "m6i.xlarge".into());
    let groups = crate::firewall::list(client, cluster).await?;
    let mut req = client
        .run_instances()
        .image_id(image)
        .instance_type(InstanceType::from(kind.as_str()))
        .min_count(1)
        .max_count(1)
        .placement(Placement::builder().availability_zone(zone).build())
        .tag_specifications(tags::spec(ResourceType::Instance, cluster, Role::Master));
    for g in &groups {
        req = req.security_group_ids(&g.id);
    }
    if let Some(s) = subnet {
        req = req.subnet_id(s);
    }
    if let Some(key) = &spec.ssh_public_key {
        req = req.key_name(import_key(client, cluster, key).await?);
    }
    let out = req.send().await.map_err(|e| map("run_instances", e))?;
    let id = out
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .ok_or_else(|| unexpected("run_instances", "no instance id"))?
        .to_string();
    tracing::info!(cluster = %cluster, instance = id, "launched master instance");
    wait_running(client, &id).await?;
    if let Some(ip) = &spec.static_ip {
        client
            .associate_address()
            .allocation_id(&ip.name)
            .instance_id(&id)
            .send()
            .await
            .map_err(|e| map("associate_address", e))?;
    }
    for (n, disk) in spec.disks.iter().enumerate() {
        // /dev/sdf, /dev/sdg, ...: the device names EC2 documents for EBS data volumes.
        let device = format!("/dev/sd{}", (b'f' + n as u8) as char);
        client
            .attach_volume()
            .volume_id(&disk.id)
            .instance_id(&id)
            .device(device)
            .send()
            .await
            .map_err(|e| map("attach_volume", e))?;
    }
    // Read it back, so that this answer equals what the next ensure finds.
    let found = find(client, cluster).await?;
    let i = found
        .iter()
        .find(|i| i.instance_id() == Some(id.as_str()))
        .ok_or_else(|| {
            unexpected(
                "run_instances",
                "the new instance is not listed by its tags",
            )
        })?;
    Ok(to_vm(i, user))
}

/// The instance and its key pair (both in the master role).
pub(crate) async fn list(client: &Client, cluster: &ClusterName) -> Result<Vec<ResourceRef>> {
    let mut all: Vec<ResourceRef> = find(client, cluster)
        .await?
        .iter()
        .filter_map(|i| tags::resource_ref(i.instance_id(), i.tags()))
        .collect();
    all.extend(
        find_keys(client, cluster)
            .await?
            .iter()
            .filter_map(|k| tags::resource_ref(k.key_pair_id(), k.tags())),
    );
    Ok(all)
}

/// Terminates the instance and waits until it is gone, so its volumes and group come free.
pub(crate) async fn delete(client: &Client, r: &ResourceRef) -> Result<()> {
    if r.id.starts_with("key-") {
        return delete_key(client, &r.name).await;
    }
    if !r.id.starts_with("i-") {
        return Ok(());
    }
    match client
        .terminate_instances()
        .instance_ids(&r.id)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) => {
            let e = map("terminate_instances", e);
            return if e.kind() == ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            };
        }
    }
    let start = Instant::now();
    loop {
        let out = client.describe_instances().instance_ids(&r.id).send().await;
        let state = match out {
            Ok(o) => o
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .next()
                .and_then(|i| i.state().and_then(|s| s.name()).cloned()),
            Err(e) => {
                let e = map("describe_instances", e);
                if e.kind() == ErrorKind::NotFound {
                    return Ok(());
                }
                return Err(e);
            }
        };
        if matches!(state, None | Some(InstanceStateName::Terminated)) {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(600) {
            return Err(Error::new(
                ErrorKind::Temporary,
                PROVIDER_NAME,
                "terminate_instances",
                format!("instance {} not terminated after 600s", r.id),
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
