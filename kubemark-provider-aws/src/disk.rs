//! The master's disks: EBS volumes in the master's availability zone.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{ResourceType, VolumeType};
use kubemark_core::provider::{ClusterName, Disk, DiskSpec, ResourceRef, Result};

use crate::error::{map, unexpected};
use crate::tags;

fn to_disk(v: &aws_sdk_ec2::types::Volume, spec: &DiskSpec) -> Disk {
    let id = v.volume_id().unwrap_or_default().to_string();
    Disk {
        role: spec.role,
        name: tags::name_of(v.tags()).unwrap_or_else(|| id.clone()),
        id,
        size_gb: v.size().map_or(spec.size_gb, |s| s as u32),
    }
}

async fn find(
    client: &Client,
    cluster: &ClusterName,
    spec: Option<&DiskSpec>,
) -> Result<Vec<aws_sdk_ec2::types::Volume>> {
    let out = client
        .describe_volumes()
        .set_filters(Some(tags::filters(cluster, spec.map(|s| s.role))))
        .send()
        .await
        .map_err(|e| map("describe_volumes", e))?;
    Ok(out
        .volumes()
        .iter()
        .filter(|v| {
            v.state()
                .is_none_or(|s| s.as_str() != "deleting" && s.as_str() != "deleted")
        })
        .cloned()
        .collect())
}

pub(crate) async fn ensure(
    client: &Client,
    cluster: &ClusterName,
    spec: &DiskSpec,
    zone: &str,
) -> Result<Disk> {
    if let Some(v) = find(client, cluster, Some(spec)).await?.first() {
        return Ok(to_disk(v, spec));
    }
    let kind = VolumeType::from(spec.disk_type.as_deref().unwrap_or("gp3"));
    let out = client
        .create_volume()
        .availability_zone(zone)
        .size(spec.size_gb as i32)
        .volume_type(kind)
        .tag_specifications(tags::spec(ResourceType::Volume, cluster, spec.role))
        .send()
        .await
        .map_err(|e| map("create_volume", e))?;
    let id = out
        .volume_id()
        .ok_or_else(|| unexpected("create_volume", "no volume id"))?;
    tracing::info!(cluster = %cluster, volume = id, role = %spec.role, "created volume");
    let found = find(client, cluster, Some(spec)).await?;
    let v = found
        .iter()
        .find(|v| v.volume_id() == Some(id))
        .ok_or_else(|| unexpected("create_volume", "the new volume is not listed by its tags"))?;
    Ok(to_disk(v, spec))
}

pub(crate) async fn list(client: &Client, cluster: &ClusterName) -> Result<Vec<ResourceRef>> {
    Ok(find(client, cluster, None)
        .await?
        .iter()
        .filter_map(|v| tags::resource_ref(v.volume_id(), v.tags()))
        .collect())
}

/// Deletes a volume; one still attached to a terminating instance is retried until it is free.
pub(crate) async fn delete(client: &Client, r: &ResourceRef) -> Result<()> {
    if !r.id.starts_with("vol-") {
        return Ok(());
    }
    crate::error::delete_while_busy(
        "delete_volume",
        "VolumeInUse",
        &format!("volume {}", r.id),
        || async {
            client
                .delete_volume()
                .volume_id(&r.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map("delete_volume", e))
        },
    )
    .await
}
