//! The master instance: the master's network tag (which the firewall rules target), the static
//! address as its external NAT address, the persistent disks attached by name, and the operator's
//! SSH key in the `ssh-keys` metadata, which the guest environment of Google's images installs.

use google_cloud_compute_v1::model::access_config::Type as AccessType;
use google_cloud_compute_v1::model::attached_disk::Mode;
use google_cloud_compute_v1::model::metadata::Items;
use google_cloud_compute_v1::model::{
    AccessConfig, AttachedDisk, AttachedDiskInitializeParams, Instance, Metadata, NetworkInterface,
    Tags,
};
use google_cloud_gax::paginator::ItemPaginator;
use google_cloud_lro::Poller;
use kubemark_core::provider::{ClusterName, MasterSpec, MasterVm, ResourceRef, Result, Role};

use crate::client::{Clients, request_id};
use crate::error::{finish, found, gone_is_ok, map, unexpected};
use crate::tags::check_owner;
use crate::{GceConfig, tags};

/// Debian 12, the image family upstream's scripts default to for the master.
const DEFAULT_IMAGE: &str = "projects/debian-cloud/global/images/family/debian-12";
const DEFAULT_MACHINE_TYPE: &str = "n2-standard-4";

async fn get(c: &Clients, project: &str, zone: &str, name: &str) -> Result<Option<Instance>> {
    found(
        "instances.get",
        c.instances
            .get()
            .set_project(project)
            .set_zone(zone)
            .set_instance(name)
            .send()
            .await,
    )
}

fn to_vm(i: &Instance, user: &str) -> MasterVm {
    let nic = i.network_interfaces.first();
    MasterVm::new(
        i.name.clone().unwrap_or_default(),
        i.id.map(|id| id.to_string()).unwrap_or_default(),
        nic.and_then(|n| n.access_configs.first())
            .and_then(|a| a.nat_ip.as_deref())
            .and_then(|a| a.parse().ok()),
        nic.and_then(|n| n.network_ip.as_deref())
            .and_then(|a| a.parse().ok()),
        user,
    )
}

pub(crate) async fn ensure(
    c: &Clients,
    project: &str,
    zone: &str,
    config: &GceConfig,
    cluster: &ClusterName,
    spec: &MasterSpec,
) -> Result<MasterVm> {
    let user = spec
        .ssh_user
        .as_deref()
        .or(config.ssh_user.as_deref())
        .unwrap_or("kubemark");
    let name = tags::name(cluster, Role::Master);
    if let Some(i) = get(c, project, zone, &name).await? {
        check_owner(
            "instances.insert",
            tags::owner(&i.labels),
            cluster,
            Role::Master,
            &name,
        )?;
        return Ok(to_vm(&i, user));
    }
    let machine_type = spec
        .machine_type
        .as_deref()
        .or(config.master_machine_type.as_deref())
        .unwrap_or(DEFAULT_MACHINE_TYPE);
    let image = spec
        .image
        .as_deref()
        .or(config.image.as_deref())
        .unwrap_or(DEFAULT_IMAGE);
    let network = config.network.as_deref().unwrap_or("default");
    let boot = AttachedDisk::new()
        .set_boot(true)
        .set_auto_delete(true)
        .set_initialize_params(
            AttachedDiskInitializeParams::new()
                .set_source_image(image)
                .set_disk_size_gb(20)
                .set_labels(tags::labels(cluster, Role::Master)),
        );
    let mut disks = vec![boot];
    for d in &spec.disks {
        // Upstream's device names, so the master's mount paths look the same.
        let device = if d.role == Role::EtcdEventsDisk {
            "master-event-pd"
        } else {
            "master-pd"
        };
        disks.push(
            AttachedDisk::new()
                .set_source(format!("projects/{project}/zones/{zone}/disks/{}", d.name))
                .set_device_name(device)
                .set_mode(Mode::ReadWrite)
                .set_auto_delete(false),
        );
    }
    let mut access = AccessConfig::new()
        .set_name("external-nat")
        .set_type(AccessType::OneToOneNat);
    if let Some(ip) = &spec.static_ip {
        access = access.set_nat_ip(ip.address.to_string());
    }
    let mut body = Instance::new()
        .set_name(&name)
        .set_machine_type(format!("zones/{zone}/machineTypes/{machine_type}"))
        .set_disks(disks)
        .set_network_interfaces([NetworkInterface::new()
            .set_network(format!("projects/{project}/global/networks/{network}"))
            .set_access_configs([access])])
        .set_tags(Tags::new().set_items([tags::master_network_tag(cluster)]))
        .set_labels(tags::labels(cluster, Role::Master))
        .set_description(tags::description(cluster, Role::Master));
    if let Some(key) = &spec.ssh_public_key {
        body = body.set_metadata(
            Metadata::new().set_items([Items::new()
                .set_key("ssh-keys")
                .set_value(format!("{user}:{}", key.trim()))]),
        );
    }
    finish(
        "instances.insert",
        c.instances
            .insert()
            .set_project(project)
            .set_zone(zone)
            .set_request_id(request_id())
            .set_body(body)
            .poller()
            .until_done()
            .await,
    )?;
    tracing::info!(cluster = %cluster, name, "created master instance");
    let i = get(c, project, zone, &name)
        .await?
        .ok_or_else(|| unexpected("instances.insert", "the new instance is not there"))?;
    Ok(to_vm(&i, user))
}

pub(crate) async fn list(
    c: &Clients,
    project: &str,
    zone: &str,
    cluster: &ClusterName,
) -> Result<Vec<ResourceRef>> {
    let mut items = c
        .instances
        .list()
        .set_project(project)
        .set_zone(zone)
        .set_filter(tags::filter(cluster, Some(Role::Master)))
        .by_item();
    let mut out = Vec::new();
    while let Some(i) = items.next().await {
        let i = i.map_err(|e| map("instances.list", e))?;
        out.extend(tags::resource_ref(
            tags::owner(&i.labels),
            i.name.as_ref(),
            i.id,
        ));
    }
    Ok(out)
}

/// Deletes the instance and waits for the operation, so its disks and address come free.
pub(crate) async fn delete(c: &Clients, project: &str, zone: &str, r: &ResourceRef) -> Result<()> {
    gone_is_ok(finish(
        "instances.delete",
        c.instances
            .delete()
            .set_project(project)
            .set_zone(zone)
            .set_instance(&r.name)
            .set_request_id(request_id())
            .poller()
            .until_done()
            .await,
    ))
}
