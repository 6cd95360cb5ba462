//! Where the master lives: the region's default VPC (and the zone's default subnet) when there
//! is one, a VPC given by id, or a network of kubemark's own — a tagged VPC (`10.200.0.0/16`), a
//! public subnet in the master's zone, and an internet gateway routed from the VPC's main route
//! table — when there is no default VPC or `KUBEMARK_AWS_VPC=create` asks for one.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, ResourceType};
use kubemark_core::provider::{ClusterName, Error, ErrorKind, ResourceRef, Result, Role};

use crate::error::{delete_while_busy, map, unexpected};
use crate::{AwsConfig, PROVIDER_NAME, tags};

const CIDR: &str = "10.200.0.0/16";
const SUBNET_CIDR: &str = "10.200.0.0/24";

/// The VPC for the security group, and the subnet to launch into (`None`: the zone's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Network {
    pub(crate) vpc: String,
    pub(crate) subnet: Option<String>,
}

async fn default_vpc(client: &Client) -> Result<Option<String>> {
    let out = client
        .describe_vpcs()
        .filters(Filter::builder().name("isDefault").values("true").build())
        .send()
        .await
        .map_err(|e| map("describe_vpcs", e))?;
    Ok(out
        .vpcs()
        .first()
        .and_then(|v| v.vpc_id().map(String::from)))
}

/// The network to use, made when needed.
pub(crate) async fn ensure(
    client: &Client,
    config: &AwsConfig,
    cluster: &ClusterName,
    zone: &str,
) -> Result<Network> {
    match config.vpc.as_deref() {
        Some(id) if id.starts_with("vpc-") => {
            return Ok(Network {
                vpc: id.to_string(),
                subnet: config.subnet.clone(),
            });
        }
        Some("create") => {}
        Some(other) if other != "default" => {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                PROVIDER_NAME,
                "describe_vpcs",
                format!("KUBEMARK_AWS_VPC must be default, create or a vpc-... id, not {other:?}"),
            ));
        }
        _ => {
            if let Some(vpc) = default_vpc(client).await? {
                return Ok(Network { vpc, subnet: None });
            }
        }
    }
    own(client, cluster, zone).await
}

async fn find_vpc(client: &Client, cluster: &ClusterName) -> Result<Option<String>> {
    let out = client
        .describe_vpcs()
        .set_filters(Some(tags::filters(cluster, Some(Role::Network))))
        .send()
        .await
        .map_err(|e| map("describe_vpcs", e))?;
    Ok(out
        .vpcs()
        .first()
        .and_then(|v| v.vpc_id().map(String::from)))
}

async fn find_subnet(client: &Client, cluster: &ClusterName) -> Result<Option<String>> {
    let out = client
        .describe_subnets()
        .set_filters(Some(tags::filters(cluster, Some(Role::Network))))
        .send()
        .await
        .map_err(|e| map("describe_subnets", e))?;
    Ok(out
        .subnets()
        .first()
        .and_then(|s| s.subnet_id().map(String::from)))
}

async fn find_gateways(
    client: &Client,
    cluster: &ClusterName,
) -> Result<Vec<aws_sdk_ec2::types::InternetGateway>> {
    let out = client
        .describe_internet_gateways()
        .set_filters(Some(tags::filters(cluster, Some(Role::Network))))
        .send()
        .await
        .map_err(|e| map("describe_internet_gateways", e))?;
    Ok(out.internet_gateways().to_vec())
}

/// Get-or-create of kubemark's own VPC, subnet and gateway, each step found again by tags.
async fn own(client: &Client, cluster: &ClusterName, zone: &str) -> Result<Network> {
    let vpc = match find_vpc(client, cluster).await? {
        Some(v) => v,
        None => {
            let out = client
                .create_vpc()
                .cidr_block(CIDR)
                .tag_specifications(tags::spec(ResourceType::Vpc, cluster, Role::Network))
                .send()
                .await
                .map_err(|e| map("create_vpc", e))?;
            let id = out
                .vpc()
                .and_then(|v| v.vpc_id())
                .ok_or_else(|| unexpected("create_vpc", "no VPC id"))?
                .to_string();
            tracing::info!(cluster = %cluster, vpc = id, "created VPC");
            id
        }
    };
    let gateway = match find_gateways(client, cluster).await?.first() {
        Some(g) => g.clone(),
        None => {
            let out = client
                .create_internet_gateway()
                .tag_specifications(tags::spec(
                    ResourceType::InternetGateway,
                    cluster,
                    Role::Network,
                ))
                .send()
                .await
                .map_err(|e| map("create_internet_gateway", e))?;
            out.internet_gateway()
                .cloned()
                .ok_or_else(|| unexpected("create_internet_gateway", "no gateway"))?
        }
    };
    let gateway_id = gateway
        .internet_gateway_id()
        .ok_or_else(|| unexpected("create_internet_gateway", "no gateway id"))?
        .to_string();
    if !gateway
        .attachments()
        .iter()
        .any(|a| a.vpc_id() == Some(vpc.as_str()))
    {
        client
            .attach_internet_gateway()
            .internet_gateway_id(&gateway_id)
            .vpc_id(&vpc)
            .send()
            .await
            .map_err(|e| map("attach_internet_gateway", e))?;
        let tables = client
            .describe_route_tables()
            .filters(Filter::builder().name("vpc-id").values(&vpc).build())
            .filters(
                Filter::builder()
                    .name("association.main")
                    .values("true")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| map("describe_route_tables", e))?;
        let table = tables
            .route_tables()
            .first()
            .and_then(|t| t.route_table_id())
            .ok_or_else(|| unexpected("describe_route_tables", "the VPC has no main table"))?;
        client
            .create_route()
            .route_table_id(table)
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id(&gateway_id)
            .send()
            .await
            .map_err(|e| map("create_route", e))?;
    }
    let subnet = match find_subnet(client, cluster).await? {
        Some(s) => s,
        None => {
            let out = client
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(SUBNET_CIDR)
                .availability_zone(zone)
                .tag_specifications(tags::spec(ResourceType::Subnet, cluster, Role::Network))
                .send()
                .await
                .map_err(|e| map("create_subnet", e))?;
            let id = out
                .subnet()
                .and_then(|s| s.subnet_id())
                .ok_or_else(|| unexpected("create_subnet", "no subnet id"))?
                .to_string();
            client
                .modify_subnet_attribute()
                .subnet_id(&id)
                .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
                .send()
                .await
                .map_err(|e| map("modify_subnet_attribute", e))?;
            id
        }
    };
    Ok(Network {
        vpc,
        subnet: Some(subnet),
    })
}

/// kubemark's subnet, gateway and VPC of `cluster`, in the order they must be deleted.
pub(crate) async fn list(client: &Client, cluster: &ClusterName) -> Result<Vec<ResourceRef>> {
    let filters = tags::filters(cluster, Some(Role::Network));
    let subnets = client
        .describe_subnets()
        .set_filters(Some(filters.clone()))
        .send()
        .await
        .map_err(|e| map("describe_subnets", e))?;
    let mut all: Vec<ResourceRef> = subnets
        .subnets()
        .iter()
        .filter_map(|s| tags::resource_ref(s.subnet_id(), s.tags()))
        .collect();
    all.extend(
        find_gateways(client, cluster)
            .await?
            .iter()
            .filter_map(|g| tags::resource_ref(g.internet_gateway_id(), g.tags())),
    );
    let vpcs = client
        .describe_vpcs()
        .set_filters(Some(filters))
        .send()
        .await
        .map_err(|e| map("describe_vpcs", e))?;
    all.extend(
        vpcs.vpcs()
            .iter()
            .filter_map(|v| tags::resource_ref(v.vpc_id(), v.tags())),
    );
    Ok(all)
}

/// Deletes one network resource; a subnet or VPC still holding a going-away instance or group
/// is retried.
pub(crate) async fn delete(client: &Client, r: &ResourceRef) -> Result<()> {
    let id = r.id.as_str();
    if id.starts_with("subnet-") {
        delete_while_busy("delete_subnet", "DependencyViolation", id, || async {
            client
                .delete_subnet()
                .subnet_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map("delete_subnet", e))
        })
        .await
    } else if id.starts_with("igw-") {
        let gateway = client
            .describe_internet_gateways()
            .internet_gateway_ids(id)
            .send()
            .await;
        if let Ok(g) = gateway {
            for a in g
                .internet_gateways()
                .iter()
                .flat_map(|g| g.attachments())
                .filter_map(|a| a.vpc_id())
            {
                let _ = client
                    .detach_internet_gateway()
                    .internet_gateway_id(id)
                    .vpc_id(a)
                    .send()
                    .await
                    .map_err(|e| map("detach_internet_gateway", e))?;
            }
        }
        delete_while_busy(
            "delete_internet_gateway",
            "DependencyViolation",
            id,
            || async {
                client
                    .delete_internet_gateway()
                    .internet_gateway_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| map("delete_internet_gateway", e))
            },
        )
        .await
    } else if id.starts_with("vpc-") {
        delete_while_busy("delete_vpc", "DependencyViolation", id, || async {
            client
                .delete_vpc()
                .vpc_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map("delete_vpc", e))
        })
        .await
    } else {
        Ok(())
    }
}
