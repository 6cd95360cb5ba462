//! Ownership on GCE: labels where the resource has them, a name prefix and a description
//! marker where it does not (firewall rules).
//!
//! Label keys may not hold `.` or `/`, so the contract's `kubemark.io/cluster` becomes
//! `kubemark_cluster` (and `kubemark_role`, `kubemark_managed_by`).

use std::collections::{BTreeMap, HashMap};

use kubemark_core::provider::{
    CLUSTER_TAG, ClusterName, MANAGED_BY_TAG, MANAGED_BY_VALUE, ROLE_TAG, ResourceRef, Role,
    owner_of, ownership_tags,
};

/// `check_owner` for this provider: a taken name that is not this cluster's is refused.
pub(crate) fn check_owner(
    operation: &'static str,
    owner: Option<(ClusterName, Role)>,
    cluster: &ClusterName,
    role: Role,
    name: &str,
) -> kubemark_core::provider::Result<()> {
    kubemark_core::provider::check_owner(
        crate::PROVIDER_NAME,
        operation,
        owner,
        cluster,
        role,
        name,
    )
}

/// The label for each ownership tag.
const LABELS: [(&str, &str); 3] = [
    (CLUSTER_TAG, "kubemark_cluster"),
    (ROLE_TAG, "kubemark_role"),
    (MANAGED_BY_TAG, "kubemark_managed_by"),
];

fn label_of(tag: &str) -> &'static str {
    LABELS
        .iter()
        .find(|(t, _)| *t == tag)
        .map(|(_, l)| *l)
        .unwrap_or("kubemark_unknown")
}

/// The name of `cluster`'s resource in `role`, in upstream's `<master>-pd` style; at most 63
/// characters for any valid cluster name.
pub(crate) fn name(cluster: &ClusterName, role: Role) -> String {
    let suffix = match role {
        Role::Master => "master",
        Role::MasterDisk => "master-pd",
        Role::EtcdEventsDisk => "event-pd",
        Role::StaticIp => "master-ip",
        Role::Firewall => "master-https",
        Role::Registry => "images",
        Role::Network => "network",
    };
    format!("kubemark-{cluster}-{suffix}")
}

/// The second firewall rule (SSH from the operator's range), also in the firewall role.
pub(crate) fn ssh_rule_name(cluster: &ClusterName) -> String {
    format!("kubemark-{cluster}-master-ssh")
}

/// The network tag the firewall rules target and the master carries.
pub(crate) fn master_network_tag(cluster: &ClusterName) -> String {
    format!("kubemark-{cluster}-master")
}

/// Labels for a new resource.
pub(crate) fn labels(cluster: &ClusterName, role: Role) -> HashMap<String, String> {
    ownership_tags(cluster, role)
        .into_iter()
        .map(|(k, v)| (label_of(&k).to_string(), v))
        .collect()
}

/// A list filter for `cluster`'s resources (in `role`, when given).
pub(crate) fn filter(cluster: &ClusterName, role: Option<Role>) -> String {
    let mut terms = vec![
        format!("(labels.{} = \"{cluster}\")", label_of(CLUSTER_TAG)),
        format!(
            "(labels.{} = \"{MANAGED_BY_VALUE}\")",
            label_of(MANAGED_BY_TAG)
        ),
    ];
    if let Some(r) = role {
        terms.push(format!("(labels.{} = \"{r}\")", label_of(ROLE_TAG)));
    }
    terms.join(" AND ")
}

/// The owner and role labels name; `None` for anything not kubemark's.
pub(crate) fn owner(labels: &HashMap<String, String>) -> Option<(ClusterName, Role)> {
    let tags: BTreeMap<String, String> = LABELS
        .iter()
        .filter_map(|(tag, label)| Some((tag.to_string(), labels.get(*label)?.clone())))
        .collect();
    owner_of(&tags)
}

/// The description marker of a resource without labels.
pub(crate) fn description(cluster: &ClusterName, role: Role) -> String {
    ownership_tags(cluster, role)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The owner a description marker names.
pub(crate) fn owner_of_description(description: &str) -> Option<(ClusterName, Role)> {
    let tags: BTreeMap<String, String> = description
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    owner_of(&tags)
}

/// The reference of a resource named `name` with id `id`, owned as `owner` says.
pub(crate) fn resource_ref(
    owner: Option<(ClusterName, Role)>,
    name: Option<&String>,
    id: Option<u64>,
) -> Option<ResourceRef> {
    let (cluster, role) = owner?;
    let name = name?.clone();
    Some(ResourceRef {
        cluster,
        role,
        id: id.map(|i| i.to_string()).unwrap_or_else(|| name.clone()),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_gce_limits_and_markers_round_trip() {
        let longest = ClusterName::new("a".repeat(40)).unwrap();
        for role in Role::TEARDOWN_ORDER {
            assert!(name(&longest, role).len() <= 63, "{role}");
        }
        let c = ClusterName::new("c1").unwrap();
        assert_eq!(
            owner(&labels(&c, Role::MasterDisk)),
            Some((c.clone(), Role::MasterDisk))
        );
        assert_eq!(
            owner_of_description(&description(&c, Role::Firewall)),
            Some((c.clone(), Role::Firewall))
        );
        assert_eq!(owner_of_description("allow https"), None);
        assert!(
            labels(&c, Role::Master)
                .keys()
                .all(|k| !k.contains(['.', '/']))
        );
    }
}
