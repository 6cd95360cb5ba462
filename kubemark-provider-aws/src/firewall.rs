//! The firewall: a security group in the master's VPC opening the API server's secure port (and
//! SSH to the operator's ranges only).

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType};
use kubemark_core::provider::{ClusterName, FirewallRule, FirewallSpec, ResourceRef, Result, Role};

use crate::error::{map, unexpected};
use crate::tags;

async fn find(
    client: &Client,
    cluster: &ClusterName,
) -> Result<Vec<aws_sdk_ec2::types::SecurityGroup>> {
    let out = client
        .describe_security_groups()
        .set_filters(Some(tags::filters(cluster, Some(Role::Firewall))))
        .send()
        .await
        .map_err(|e| map("describe_security_groups", e))?;
    Ok(out.security_groups().to_vec())
}

fn permission(port: u16, ranges: &[String]) -> IpPermission {
    let mut b = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port as i32)
        .to_port(port as i32);
    for r in ranges {
        b = b.ip_ranges(IpRange::builder().cidr_ip(r).build());
    }
    b.build()
}

pub(crate) async fn ensure(
    client: &Client,
    cluster: &ClusterName,
    spec: &FirewallSpec,
    ssh: &[String],
    vpc: &str,
) -> Result<FirewallRule> {
    if let Some(g) = find(client, cluster).await?.first() {
        return Ok(FirewallRule {
            name: g.group_id().unwrap_or_default().to_string(),
            port: spec.port,
        });
    }
    let out = client
        .create_security_group()
        .group_name(tags::name(cluster, Role::Firewall))
        .description(format!(
            "kubemark cluster {cluster}: API server secure port, SSH from the operator"
        ))
        .vpc_id(vpc)
        .tag_specifications(tags::spec(
            ResourceType::SecurityGroup,
            cluster,
            Role::Firewall,
        ))
        .send()
        .await
        .map_err(|e| map("create_security_group", e))?;
    let id = out
        .group_id()
        .ok_or_else(|| unexpected("create_security_group", "no group id"))?
        .to_string();
    let mut ssh_ranges: Vec<String> = spec.ssh_source_ranges.clone();
    ssh_ranges.extend(ssh.iter().cloned());
    let mut req = client
        .authorize_security_group_ingress()
        .group_id(&id)
        .ip_permissions(permission(spec.port, &spec.source_ranges));
    if !ssh_ranges.is_empty() {
        req = req.ip_permissions(permission(22, &ssh_ranges));
    }
    req.send()
        .await
        .map_err(|e| map("authorize_security_group_ingress", e))?;
    tracing::info!(cluster = %cluster, group = id, "created security group");
    Ok(FirewallRule {
        name: id,
        port: spec.port,
    })
}

pub(crate) async fn list(client: &Client, cluster: &ClusterName) -> Result<Vec<ResourceRef>> {
    Ok(find(client, cluster)
        .await?
        .iter()
        .filter_map(|g| tags::resource_ref(g.group_id(), g.tags()))
        .collect())
}

/// Deletes the group; while a terminating instance still uses it, retries.
pub(crate) async fn delete(client: &Client, r: &ResourceRef) -> Result<()> {
    if !r.id.starts_with("sg-") {
        return Ok(());
    }
    crate::error::delete_while_busy(
        "delete_security_group",
        "DependencyViolation",
        &format!("security group {}", r.id),
        || async {
            client
                .delete_security_group()
                .group_id(&r.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map("delete_security_group", e))
        },
    )
    .await
}
