//! The master's static address: a regional external address, reserved once and given to the
//! master's access config.

use google_cloud_compute_v1::model::Address;
use google_cloud_compute_v1::model::address::AddressType;
use google_cloud_gax::paginator::ItemPaginator;
use google_cloud_lro::Poller;
use kubemark_core::provider::{ClusterName, ResourceRef, Result, Role, StaticIp};

use crate::client::{Clients, request_id};
use crate::error::{delete_while_in_use, finish, found, map, unexpected};
use crate::tags;
use crate::tags::check_owner;

async fn get(c: &Clients, project: &str, region: &str, name: &str) -> Result<Option<Address>> {
    found(
        "addresses.get",
        c.addresses
            .get()
            .set_project(project)
            .set_region(region)
            .set_address(name)
            .send()
            .await,
    )
}

fn to_static_ip(a: &Address) -> Result<StaticIp> {
    let address = a
        .address
        .as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| unexpected("addresses.get", "the address has no IP"))?;
    Ok(StaticIp {
        name: a.name.clone().unwrap_or_default(),
        address,
    })
}

pub(crate) async fn ensure(
    c: &Clients,
    project: &str,
    region: &str,
    cluster: &ClusterName,
) -> Result<StaticIp> {
    let name = tags::name(cluster, Role::StaticIp);
    if let Some(a) = get(c, project, region, &name).await? {
        check_owner(
            "addresses.insert",
            tags::owner(&a.labels),
            cluster,
            Role::StaticIp,
            &name,
        )?;
        return to_static_ip(&a);
    }
    let body = Address::new()
        .set_name(&name)
        .set_address_type(AddressType::External)
        .set_description(tags::description(cluster, Role::StaticIp))
        .set_labels(tags::labels(cluster, Role::StaticIp));
    finish(
        "addresses.insert",
        c.addresses
            .insert()
            .set_project(project)
            .set_region(region)
            .set_request_id(request_id())
            .set_body(body)
            .poller()
            .until_done()
            .await,
    )?;
    tracing::info!(cluster = %cluster, name, "reserved static address");
    let a = get(c, project, region, &name)
        .await?
        .ok_or_else(|| unexpected("addresses.insert", "the new address is not there"))?;
    to_static_ip(&a)
}

pub(crate) async fn list(
    c: &Clients,
    project: &str,
    region: &str,
    cluster: &ClusterName,
) -> Result<Vec<ResourceRef>> {
    let mut items = c
        .addresses
        .list()
        .set_project(project)
        .set_region(region)
        .set_filter(tags::filter(cluster, None))
        .by_item();
    let mut out = Vec::new();
    while let Some(a) = items.next().await {
        let a = a.map_err(|e| map("addresses.list", e))?;
        out.extend(tags::resource_ref(
            tags::owner(&a.labels),
            a.name.as_ref(),
            a.id,
        ));
    }
    Ok(out)
}

pub(crate) async fn delete(
    c: &Clients,
    project: &str,
    region: &str,
    r: &ResourceRef,
) -> Result<()> {
    delete_while_in_use("addresses.delete", &r.name, || async {
        finish(
            "addresses.delete",
            c.addresses
                .delete()
                .set_project(project)
                .set_region(region)
                .set_address(&r.name)
                .set_request_id(request_id())
                .poller()
                .until_done()
                .await,
        )
    })
    .await
}
