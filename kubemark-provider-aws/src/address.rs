//! The master's static IP: an Elastic IP in the VPC domain.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{DomainType, ResourceType};
use kubemark_core::provider::{ClusterName, ResourceRef, Result, Role, StaticIp};

use crate::error::{map, unexpected};
use crate::tags;

fn to_static_ip(a: &aws_sdk_ec2::types::Address) -> Result<StaticIp> {
    let ip = a
        .public_ip()
        .ok_or_else(|| unexpected("ensure_static_ip", "address without an IP"))?;
    Ok(StaticIp {
        name: a.allocation_id().unwrap_or_default().to_string(),
        address: ip
            .parse()
            .map_err(|_| unexpected("ensure_static_ip", format!("bad address {ip}")))?,
    })
}

pub(crate) async fn find(
    client: &Client,
    cluster: &ClusterName,
) -> Result<Vec<aws_sdk_ec2::types::Address>> {
    let out = client
        .describe_addresses()
        .set_filters(Some(tags::filters(cluster, Some(Role::StaticIp))))
        .send()
        .await
        .map_err(|e| map("describe_addresses", e))?;
    Ok(out.addresses().to_vec())
}

pub(crate) async fn ensure(client: &Client, cluster: &ClusterName) -> Result<StaticIp> {
    if let Some(a) = find(client, cluster).await?.first() {
        return to_static_ip(a);
    }
    let out = client
        .allocate_address()
        .domain(DomainType::Vpc)
        .tag_specifications(tags::spec(ResourceType::ElasticIp, cluster, Role::StaticIp))
        .send()
        .await
        .map_err(|e| map("allocate_address", e))?;
    let id = out
        .allocation_id()
        .ok_or_else(|| unexpected("allocate_address", "no allocation id"))?;
    tracing::info!(cluster = %cluster, allocation = id, "allocated Elastic IP");
    let found = find(client, cluster).await?;
    let a = found
        .iter()
        .find(|a| a.allocation_id() == Some(id))
        .ok_or_else(|| {
            unexpected(
                "allocate_address",
                "the new address is not listed by its tags",
            )
        })?;
    to_static_ip(a)
}

pub(crate) async fn list(client: &Client, cluster: &ClusterName) -> Result<Vec<ResourceRef>> {
    Ok(find(client, cluster)
        .await?
        .iter()
        .filter_map(|a| tags::resource_ref(a.allocation_id(), a.tags()))
        .collect())
}

pub(crate) async fn delete(client: &Client, r: &ResourceRef) -> Result<()> {
    if !r.id.starts_with("eipalloc-") {
        return Ok(()); // Not an allocation id: no such address can exist.
    }
    match client.release_address().allocation_id(&r.id).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = map("release_address", e);
            if e.kind() == kubemark_core::provider::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}
