//! An example third-party kubemark provider, `example`: the master runs on this machine (as the
//! `local` provider's does), and the provider's "infrastructure", a static IP and a firewall
//! rule, are records in a directory: JSON files carrying kubemark's ownership tags, so that it
//! has something to create, find by tag and delete, like a cloud provider.
//!
//! It uses kubemark's crates through their public API only; `docs/provider-contract.md` walks
//! through it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kubemark_core::provider::{
    Capabilities, ClusterName, DynProvider, Error, ErrorKind, FirewallRule, FirewallSpec, Provider,
    ResourceRef, Result, Role, StaticIp, check_owner, owner_of, ownership_tags,
};
use kubemark_core::registry::{
    LocalEntry, Placement, PlacementError, PlacementRequest, ProviderEntry, ProviderSettings,
    SettingSpec,
};

/// The name users select it by.
pub const NAME: &str = "example";

/// What it reads: where its records live (required), and a token its "API" would take (a
/// secret: never written to a cluster's state, so stop reads it from the environment again).
const SETTINGS: &[SettingSpec] = &[
    SettingSpec::new(
        "dir",
        &["KUBEMARK_EXAMPLE_DIR"],
        "the directory of the provider's records",
    )
    .required(),
    SettingSpec::new(
        "token",
        &["KUBEMARK_EXAMPLE_TOKEN"],
        "a credential for the records' directory, checked against its `token` file if any",
    )
    .secret(),
];

/// The registry entry: the one value this crate exports for a `kubemark` binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExampleEntry;

#[async_trait::async_trait]
impl ProviderEntry for ExampleEntry {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "example third-party provider: a local master, its infrastructure as files"
    }

    fn settings(&self) -> &'static [SettingSpec] {
        SETTINGS
    }

    fn build(&self, settings: &ProviderSettings) -> Result<DynProvider> {
        let dir = PathBuf::from(settings.get("dir").unwrap_or_default());
        if !dir.is_absolute() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                NAME,
                "build",
                "dir must be an absolute path",
            )
            .with_context("dir", dir.display().to_string()));
        }
        if let Ok(expected) = std::fs::read_to_string(dir.join("token"))
            && settings.get("token") != Some(expected.trim())
        {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                NAME,
                "build",
                "the token setting does not match the directory's token file",
            ));
        }
        Ok(Arc::new(ExampleProvider { dir }))
    }

    async fn placement(
        &self,
        request: PlacementRequest<'_>,
    ) -> std::result::Result<Placement, PlacementError> {
        // The master as the local provider places it; the records are what this one adds.
        let mut placement = LocalEntry.placement(request).await?;
        placement.infrastructure.firewall = FirewallSpec {
            port: 6443,
            ..FirewallSpec::default()
        };
        Ok(placement)
    }
}

/// The provider: one JSON record per resource in `dir`, named `<cluster>-<role>.json`.
#[derive(Debug)]
pub struct ExampleProvider {
    dir: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    name: String,
    tags: BTreeMap<String, String>,
    #[serde(default)]
    port: Option<u16>,
}

fn io_error(operation: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Unexpected, NAME, operation, e.to_string())
        .with_context("path", path.display().to_string())
}

impl ExampleProvider {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn read(&self, operation: &'static str, path: &Path) -> Result<Option<Record>> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                Error::new(ErrorKind::Unexpected, NAME, operation, e.to_string())
                    .with_context("path", path.display().to_string())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(operation, path, e)),
        }
    }

    /// Gets or creates the record of `role`: adopted only when tagged as `cluster`'s.
    fn ensure(
        &self,
        operation: &'static str,
        cluster: &ClusterName,
        role: Role,
        port: Option<u16>,
    ) -> Result<Record> {
        let name = format!("{cluster}-{}", role.as_str());
        let path = self.path(&name);
        if let Some(existing) = self.read(operation, &path)? {
            check_owner(
                NAME,
                operation,
                owner_of(&existing.tags),
                cluster,
                role,
                &name,
            )?;
            return Ok(existing);
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| io_error(operation, &self.dir, e))?;
        let record = Record {
            name,
            tags: ownership_tags(cluster, role),
            port,
        };
        let json = serde_json::to_string_pretty(&record).expect("a record serializes");
        std::fs::write(&path, json).map_err(|e| io_error(operation, &path, e))?;
        Ok(record)
    }
}

#[async_trait::async_trait]
impl Provider for ExampleProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::NONE;
        caps.static_ip = true;
        caps.firewall = true;
        caps
    }

    async fn ensure_static_ip(&self, cluster: &ClusterName) -> Result<StaticIp> {
        let r = self.ensure("ensure_static_ip", cluster, Role::StaticIp, None)?;
        Ok(StaticIp {
            name: r.name,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        })
    }

    async fn ensure_firewall(
        &self,
        cluster: &ClusterName,
        spec: &FirewallSpec,
    ) -> Result<FirewallRule> {
        let r = self.ensure("ensure_firewall", cluster, Role::Firewall, Some(spec.port))?;
        Ok(FirewallRule {
            name: r.name,
            port: r.port.unwrap_or(spec.port),
        })
    }

    async fn list_owned(&self, cluster: &ClusterName) -> Result<Vec<ResourceRef>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list_owned", &self.dir, e)),
        };
        let mut owned = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            // Found by tag, never by name: a file named like ours but not tagged is not ours.
            if let Some(r) = self.read("list_owned", &path)?
                && let Some((c, role)) = owner_of(&r.tags)
                && &c == cluster
            {
                owned.push(ResourceRef {
                    cluster: c,
                    role,
                    id: r.name.clone(),
                    name: r.name,
                });
            }
        }
        Ok(owned)
    }

    async fn delete(&self, resource: &ResourceRef) -> Result<()> {
        let path = self.path(&resource.name);
        match self.read("delete", &path)? {
            // Deleting a missing thing succeeds; a record that is not this cluster's stays.
            None => Ok(()),
            Some(r) if owner_of(&r.tags) != Some((resource.cluster.clone(), resource.role)) => {
                Err(Error::new(
                    ErrorKind::AlreadyExists,
                    NAME,
                    "delete",
                    "the record is not this cluster's",
                )
                .with_context("name", resource.name.clone()))
            }
            Some(_) => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(io_error("delete", &path, e))
                }
                _ => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use kubemark_core::provider::conformance::Conformance;
    use kubemark_core::registry::conformance::check_entry;

    use super::*;

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let tmp = tempfile::tempdir().unwrap();
        let settings = ProviderSettings::new()
            .with("dir", tmp.path().display().to_string())
            .with("token", "t");
        Conformance::new(check_entry(&ExampleEntry, &settings))
            .run()
            .await;
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "all deleted"
        );
    }

    #[test]
    fn a_relative_dir_or_a_wrong_token_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let e = ExampleEntry
            .provider(&ProviderSettings::new().with("dir", "infra"))
            .unwrap_err();
        assert!(
            e.to_string().contains("dir must be an absolute path"),
            "{e}"
        );
        std::fs::write(tmp.path().join("token"), "right\n").unwrap();
        let dir = tmp.path().display().to_string();
        let wrong = ProviderSettings::new()
            .with("dir", dir.clone())
            .with("token", "wrong");
        assert_eq!(
            ExampleEntry.provider(&wrong).unwrap_err().kind(),
            ErrorKind::PermissionDenied
        );
        let right = ProviderSettings::new()
            .with("dir", dir)
            .with("token", "right");
        assert!(ExampleEntry.provider(&right).is_ok());
    }
}
