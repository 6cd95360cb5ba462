//! Ownership tags: how a provider marks what it created so that teardown finds it without any
//! local state (the Cluster API rule). Each backend encodes these keys in its own tag syntax.

use std::collections::BTreeMap;
use std::fmt;

/// Tag key naming the kubemark cluster that owns a resource.
pub const CLUSTER_TAG: &str = "kubemark.io/cluster";
/// Tag key naming the role a resource plays (see [`Role`]).
pub const ROLE_TAG: &str = "kubemark.io/role";
/// Tag key marking a resource as created by kubemark.
pub const MANAGED_BY_TAG: &str = "kubemark.io/managed-by";
/// Value of [`MANAGED_BY_TAG`].
pub const MANAGED_BY_VALUE: &str = "kubemark";

/// The name of a kubemark cluster, which scopes every resource a provider creates.
///
/// Names are DNS-label-like (lowercase letters, digits and `-`, at most 40 characters) so that
/// every backend can use them in resource names and labels.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterName(String);

/// A cluster name that does not follow the rules of [`ClusterName`].
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid cluster name {0:?}: use 1-40 lowercase letters, digits or '-', starting with a letter"
)]
pub struct InvalidClusterName(String);

impl ClusterName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidClusterName> {
        let name = name.into();
        let valid = (1..=40).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(Self(name))
        } else {
            Err(InvalidClusterName(name))
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClusterName {
    type Error = InvalidClusterName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<ClusterName> for String {
    fn from(value: ClusterName) -> Self {
        value.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The role a resource plays in a kubemark cluster.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The master VM.
    Master,
    /// The master's data disk (etcd).
    MasterDisk,
    /// The optional separate disk for the etcd-events instance.
    EtcdEventsDisk,
    /// The master's static IP address.
    StaticIp,
    /// The firewall rule that opens the secure port.
    Firewall,
    /// The image registry (repository) for the hollow-node image.
    Registry,
    /// A network the provider made for the master when the account has none to use (AWS
    /// without a default VPC: the VPC, its subnet and internet gateway). Goes last.
    Network,
}

impl Role {
    /// Every role, in teardown order: what depends on others goes first.
    pub const TEARDOWN_ORDER: [Role; 7] = [
        Role::Master,
        Role::Firewall,
        Role::StaticIp,
        Role::EtcdEventsDisk,
        Role::MasterDisk,
        Role::Registry,
        Role::Network,
    ];

    /// The tag value for this role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::MasterDisk => "master-disk",
            Role::EtcdEventsDisk => "etcd-events-disk",
            Role::StaticIp => "static-ip",
            Role::Firewall => "firewall",
            Role::Registry => "registry",
            Role::Network => "network",
        }
    }

    /// Parses a tag value written by [`Role::as_str`].
    pub fn parse(value: &str) -> Option<Role> {
        Self::TEARDOWN_ORDER
            .into_iter()
            .find(|r| r.as_str() == value)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tags every resource created for `cluster` in `role` must carry.
pub fn ownership_tags(cluster: &ClusterName, role: Role) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CLUSTER_TAG.to_string(), cluster.to_string()),
        (ROLE_TAG.to_string(), role.as_str().to_string()),
        (MANAGED_BY_TAG.to_string(), MANAGED_BY_VALUE.to_string()),
    ])
}

/// Reads back the owner and role from tags; `None` when the resource is not kubemark's.
pub fn owner_of(tags: &BTreeMap<String, String>) -> Option<(ClusterName, Role)> {
    if tags.get(MANAGED_BY_TAG).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        return None;
    }
    let cluster = ClusterName::new(tags.get(CLUSTER_TAG)?.clone()).ok()?;
    let role = Role::parse(tags.get(ROLE_TAG)?)?;
    Some((cluster, role))
}

/// For a get-or-create by name: `Ok` when `found` (the owner a resource's tags name) is
/// `cluster` in `role`; otherwise the name is taken by something that is not this cluster's, which
/// a provider must refuse rather than adopt (contract rule 4).
pub fn check_owner(
    provider: &str,
    operation: &'static str,
    found: Option<(ClusterName, Role)>,
    cluster: &ClusterName,
    role: Role,
    name: &str,
) -> super::Result<()> {
    if found == Some((cluster.clone(), role)) {
        return Ok(());
    }
    Err(super::Error::new(
        super::ErrorKind::AlreadyExists,
        provider,
        operation,
        format!("{name} exists and is not this cluster's {role}"),
    ))
}

/// Runs a delete until the resource is gone (contract rule 2): `NotFound` counts as done, and
/// while `busy` says the backend refuses because something still uses the resource (an instance
/// that is going away), the delete is retried with back-off (0.5 s doubling to 10 s, about a
/// minute in all) before giving up with an `Unexpected` error naming `what`.
pub async fn delete_until_gone<F, Fut>(
    provider: &str,
    operation: &'static str,
    what: &str,
    busy: impl Fn(&super::Error) -> bool,
    mut attempt: F,
) -> super::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = super::Result<()>>,
{
    let mut delay = std::time::Duration::from_millis(500);
    for _ in 0..12 {
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == super::ErrorKind::NotFound => return Ok(()),
            Err(e) if busy(&e) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
    Err(super::Error::new(
        super::ErrorKind::Unexpected,
        provider,
        operation,
        format!("{what} stayed in use"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{Error, ErrorKind};

    #[tokio::test(start_paused = true)]
    async fn delete_until_gone_waits_out_busy_and_takes_not_found_as_done() {
        let busy = |e: &Error| e.to_string().contains("in use");
        let err = |kind, m: &str| Error::new(kind, "p", "delete", m.to_string());
        let mut calls = 0;
        let r = delete_until_gone("p", "delete", "disk d", busy, || {
            calls += 1;
            let n = calls;
            async move {
                match n {
                    1 | 2 => Err(err(ErrorKind::Unexpected, "in use by vm")),
                    _ => Err(err(ErrorKind::NotFound, "gone")),
                }
            }
        })
        .await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(calls, 3);
        let r = delete_until_gone("p", "delete", "disk d", busy, || async {
            Err(err(ErrorKind::PermissionDenied, "no"))
        })
        .await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::PermissionDenied);
        let r = delete_until_gone("p", "delete", "disk d", busy, || async {
            Err(err(ErrorKind::Unexpected, "in use"))
        })
        .await;
        let e = r.unwrap_err();
        assert!(e.to_string().contains("disk d stayed in use"), "{e}");
    }

    #[test]
    fn cluster_names_are_validated() {
        assert!(ClusterName::new("kubemark").is_ok());
        assert!(ClusterName::new("km-1").is_ok());
        for bad in ["", "Kubemark", "1abc", "a_b", "a-", &"a".repeat(41)] {
            assert!(ClusterName::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn tags_round_trip_and_foreign_tags_are_not_ours() {
        let c = ClusterName::new("alpha").unwrap();
        for role in Role::TEARDOWN_ORDER {
            let tags = ownership_tags(&c, role);
            assert_eq!(owner_of(&tags), Some((c.clone(), role)));
        }
        let mut foreign = ownership_tags(&c, Role::Master);
        foreign.remove(MANAGED_BY_TAG);
        assert_eq!(owner_of(&foreign), None);
    }
}
