//! Firewall rules for the master's network tag: the API server's secure port from the spec's
//! ranges, and SSH (22) only from the operator's ranges (no rule when there are none).
//!
//! Firewall rules carry no labels, so ownership is the name prefix `kubemark-<cluster>-` plus a
//! description marker `kubemark.io/cluster=<cluster> kubemark.io/role=firewall
//! kubemark.io/managed-by=kubemark`; both must match for a rule to count as kubemark's.

use google_cloud_compute_v1::model::Firewall;
use google_cloud_compute_v1::model::firewall::{Allowed, Direction};
use google_cloud_gax::paginator::ItemPaginator;
use google_cloud_lro::Poller;
use kubemark_core::provider::{ClusterName, FirewallRule, FirewallSpec, ResourceRef, Result, Role};

use crate::client::{Clients, request_id};
use crate::error::{finish, found, gone_is_ok, map};
use crate::tags;
use crate::tags::check_owner;

async fn get(c: &Clients, project: &str, name: &str) -> Result<Option<Firewall>> {
    found(
        "firewalls.get",
        c.firewalls
            .get()
            .set_project(project)
            .set_firewall(name)
            .send()
            .await,
    )
}

fn owner(f: &Firewall, cluster_prefix: &str) -> Option<(ClusterName, Role)> {
    let name = f.name.as_deref()?;
    let owner = tags::owner_of_description(f.description.as_deref()?)?;
    name.starts_with(&format!("kubemark-{}-", owner.0))
        .then_some(owner)
        .filter(|_| cluster_prefix.is_empty() || name.starts_with(cluster_prefix))
}

async fn ensure_rule(
    c: &Clients,
    project: &str,
    network: &str,
    cluster: &ClusterName,
    name: &str,
    port: u16,
    ranges: &[String],
) -> Result<()> {
    if let Some(f) = get(c, project, name).await? {
        return check_owner(
            "firewalls.insert",
            owner(&f, ""),
            cluster,
            Role::Firewall,
            name,
        );
    }
    let body = Firewall::new()
        .set_name(name)
        .set_network(format!("projects/{project}/global/networks/{network}"))
        .set_direction(Direction::Ingress)
        .set_allowed([Allowed::new()
            .set_ip_protocol("tcp")
            .set_ports([port.to_string()])])
        .set_source_ranges(ranges.iter().cloned())
        .set_target_tags([tags::master_network_tag(cluster)])
        .set_description(tags::description(cluster, Role::Firewall));
    finish(
        "firewalls.insert",
        c.firewalls
            .insert()
            .set_project(project)
            .set_request_id(request_id())
            .set_body(body)
            .poller()
            .until_done()
            .await,
    )?;
    tracing::info!(cluster = %cluster, name, port, "created firewall rule");
    Ok(())
}

pub(crate) async fn ensure(
    c: &Clients,
    project: &str,
    network: &str,
    cluster: &ClusterName,
    spec: &FirewallSpec,
    ssh_ranges: &[String],
) -> Result<FirewallRule> {
    let name = tags::name(cluster, Role::Firewall);
    ensure_rule(
        c,
        project,
        network,
        cluster,
        &name,
        spec.port,
        &spec.source_ranges,
    )
    .await?;
    if !ssh_ranges.is_empty() {
        let ssh = tags::ssh_rule_name(cluster);
        ensure_rule(c, project, network, cluster, &ssh, 22, ssh_ranges).await?;
    }
    Ok(FirewallRule {
        name,
        port: spec.port,
    })
}

/// Every rule of the project (firewall rules cannot be filtered by labels), kept when both the
/// name prefix and the description marker say `cluster`.
pub(crate) async fn list(
    c: &Clients,
    project: &str,
    cluster: &ClusterName,
) -> Result<Vec<ResourceRef>> {
    let prefix = format!("kubemark-{cluster}-");
    let mut items = c.firewalls.list().set_project(project).by_item();
    let mut out = Vec::new();
    while let Some(f) = items.next().await {
        let f = f.map_err(|e| map("firewalls.list", e))?;
        out.extend(tags::resource_ref(
            owner(&f, &prefix),
            f.name.as_ref(),
            f.id,
        ));
    }
    Ok(out)
}

pub(crate) async fn delete(c: &Clients, project: &str, r: &ResourceRef) -> Result<()> {
    gone_is_ok(finish(
        "firewalls.delete",
        c.firewalls
            .delete()
            .set_project(project)
            .set_firewall(&r.name)
            .set_request_id(request_id())
            .poller()
            .until_done()
            .await,
    ))
}
