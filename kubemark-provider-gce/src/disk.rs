//! The master's persistent disks (data, and etcd-events when asked) in the master's zone;
//! `pd-ssd` unless the spec names a type, as upstream's master disk.

use google_cloud_compute_v1::model::Disk as GceDisk;
use google_cloud_gax::paginator::ItemPaginator;
use google_cloud_lro::Poller;
use kubemark_core::provider::{ClusterName, Disk, DiskSpec, ResourceRef, Result};

use crate::client::{Clients, request_id};
use crate::error::{delete_while_in_use, finish, found, map, unexpected};
use crate::tags;
use crate::tags::check_owner;

async fn get(c: &Clients, project: &str, zone: &str, name: &str) -> Result<Option<GceDisk>> {
    found(
        "disks.get",
        c.disks
            .get()
            .set_project(project)
            .set_zone(zone)
            .set_disk(name)
            .send()
            .await,
    )
}

fn to_disk(d: &GceDisk, spec: &DiskSpec) -> Disk {
    Disk {
        role: spec.role,
        name: d.name.clone().unwrap_or_default(),
        id: d.id.map(|i| i.to_string()).unwrap_or_default(),
        size_gb: d
            .size_gb
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(spec.size_gb),
    }
}

pub(crate) async fn ensure(
    c: &Clients,
    project: &str,
    zone: &str,
    cluster: &ClusterName,
    spec: &DiskSpec,
) -> Result<Disk> {
    let name = tags::name(cluster, spec.role);
    if let Some(d) = get(c, project, zone, &name).await? {
        check_owner(
            "disks.insert",
            tags::owner(&d.labels),
            cluster,
            spec.role,
            &name,
        )?;
        return Ok(to_disk(&d, spec));
    }
    let kind = spec.disk_type.as_deref().unwrap_or("pd-ssd");
    let body = GceDisk::new()
        .set_name(&name)
        .set_size_gb(i64::from(spec.size_gb))
        .set_type(format!("projects/{project}/zones/{zone}/diskTypes/{kind}"))
        .set_description(tags::description(cluster, spec.role))
        .set_labels(tags::labels(cluster, spec.role));
    finish(
        "disks.insert",
        c.disks
            .insert()
            .set_project(project)
            .set_zone(zone)
            .set_request_id(request_id())
            .set_body(body)
            .poller()
            .until_done()
            .await,
    )?;
    tracing::info!(cluster = %cluster, name, "created persistent disk");
    let d = get(c, project, zone, &name)
        .await?
        .ok_or_else(|| unexpected("disks.insert", "the new disk is not there"))?;
    Ok(to_disk(&d, spec))
}

pub(crate) async fn list(
    c: &Clients,
    project: &str,
    zone: &str,
    cluster: &ClusterName,
) -> Result<Vec<ResourceRef>> {
    let mut items = c
        .disks
        .list()
        .set_project(project)
        .set_zone(zone)
        .set_filter(tags::filter(cluster, None))
        .by_item();
    let mut out = Vec::new();
    while let Some(d) = items.next().await {
        let d = d.map_err(|e| map("disks.list", e))?;
        out.extend(tags::resource_ref(
            tags::owner(&d.labels),
            d.name.as_ref(),
            d.id,
        ));
    }
    Ok(out)
}

/// Deletes the disk, waiting while the master that used it is still going away.
pub(crate) async fn delete(c: &Clients, project: &str, zone: &str, r: &ResourceRef) -> Result<()> {
    delete_while_in_use("disks.delete", &r.name, || async {
        finish(
            "disks.delete",
            c.disks
                .delete()
                .set_project(project)
                .set_zone(zone)
                .set_disk(&r.name)
                .set_request_id(request_id())
                .poller()
                .until_done()
                .await,
        )
    })
    .await
}
