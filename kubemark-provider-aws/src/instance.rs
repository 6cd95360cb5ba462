//! The master instance: launched in the master's availability zone with the cluster's security
//! group, the operator's SSH key through cloud-init user data (no key pair resource to leak), its
//! Elastic IP associated and its volumes attached.

use std::time::{Duration, Instant};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    Filter, Instance, InstanceStateName, InstanceType, Placement, ResourceType,
};
use kubemark_core::provider::{
    ClusterName, Error, ErrorKind, MasterSpec, MasterVm, ResourceRef, Result, Role, SshTarget,
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
    let public_ip = i.public_ip_address().and_then(|a| a.parse().ok());
    let private_ip = i.private_ip_address().and_then(|a| a.parse().ok());
    MasterVm {
        name: tags::name_of(i.tags()).unwrap_or_else(|| id.clone()),
        id,
        public_ip,
        private_ip,
        ssh: public_ip
            .or(private_ip)
            .map(|ip: std::net::IpAddr| SshTarget {
                host: ip.to_string(),
                port: 22,
                user: user.to_string(),
            }),
    }
}

/// cloud-init user data that authorizes `key` for the image's default user.
fn user_data(key: &str) -> String {
    use base64::Engine;
    let text = format!("#cloud-config\nssh_authorized_keys:\n  - {}\n", key.trim());
    base64::engine::general_purpose::STANDARD.encode(text)
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
) -> Result<MasterVm> {
    let user = spec
        .ssh_user
        .as_deref()
        .or(config.ssh_user.as_deref())
        .unwrap_or("admin");
    if let Some(i) = find(client, cluster).await?.first() {
        return Ok(to_vm(i, user));
    }
    let image = spec
        .image
        .clone()
        .or_else(|| config.ami.clone())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidConfig,
                PROVIDER_NAME,
                "run_instances",
                "no AMI for the master: set KUBEMARK_AWS_AMI (a Debian 12 or Ubuntu image of the region)",
            )
        })?;
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
    if let Some(key) = &spec.ssh_public_key {
        req = req.user_data(user_data(key));
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

pub(crate) async fn list(client: &Client, cluster: &ClusterName) -> Result<Vec<ResourceRef>> {
    Ok(find(client, cluster)
        .await?
        .iter()
        .filter_map(|i| tags::resource_ref(i.instance_id(), i.tags()))
        .collect())
}

/// Terminates the instance and waits until it is gone, so its volumes and group come free.
pub(crate) async fn delete(client: &Client, r: &ResourceRef) -> Result<()> {
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
