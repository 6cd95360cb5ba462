//! Ownership tags on EC2 resources and the filters that find them again.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use kubemark_core::provider::{
    CLUSTER_TAG, ClusterName, MANAGED_BY_TAG, MANAGED_BY_VALUE, ROLE_TAG, ResourceRef, Role,
    owner_of, ownership_tags,
};

/// The name every resource of `cluster` in `role` gets (EC2 shows it from the `Name` tag).
pub(crate) fn name(cluster: &ClusterName, role: Role) -> String {
    format!("kubemark-{cluster}-{role}")
}

/// Tags for a new resource: ownership plus `Name`.
pub(crate) fn spec(kind: ResourceType, cluster: &ClusterName, role: Role) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(kind);
    for (k, v) in ownership_tags(cluster, role) {
        b = b.tags(Tag::builder().key(k).value(v).build());
    }
    b.tags(
        Tag::builder()
            .key("Name")
            .value(name(cluster, role))
            .build(),
    )
    .build()
}

/// Filters for resources of `cluster` (and `role`, when given) that kubemark manages.
pub(crate) fn filters(cluster: &ClusterName, role: Option<Role>) -> Vec<Filter> {
    let tag = |k: &str, v: &str| Filter::builder().name(format!("tag:{k}")).values(v).build();
    let mut f = vec![
        tag(CLUSTER_TAG, cluster.as_str()),
        tag(MANAGED_BY_TAG, MANAGED_BY_VALUE),
    ];
    if let Some(r) = role {
        f.push(tag(ROLE_TAG, r.as_str()));
    }
    f
}

/// The owner and role a resource's tags name; `None` for anything not kubemark's.
pub(crate) fn owner(tags: &[Tag]) -> Option<(ClusterName, Role)> {
    let map: BTreeMap<String, String> = tags
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect();
    owner_of(&map)
}

/// The `Name` tag.
pub(crate) fn name_of(tags: &[Tag]) -> Option<String> {
    tags.iter()
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value().map(String::from))
}

/// The resource reference of an EC2 resource with `id` and `tags`; `None` when not kubemark's.
pub(crate) fn resource_ref(id: Option<&str>, tags: &[Tag]) -> Option<ResourceRef> {
    let (cluster, role) = owner(tags)?;
    let id = id?.to_string();
    Some(ResourceRef {
        cluster,
        role,
        name: name_of(tags).unwrap_or_else(|| id.clone()),
        id,
    })
}
