//! `kubemark start`'s settings from three sources: flags, environment variables with upstream's
//! names, and a versioned YAML file (`--config`, `KUBEMARK_CONFIG`). A flag wins over its
//! variable, a variable over the file, the file over the default (docs/configuration.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cli::{NodeCerts, StartArgs};

/// The file's `apiVersion`.
pub const API_VERSION: &str = "kubemark.io/v1alpha1";
/// The file's `kind`.
pub const KIND: &str = "ClusterConfig";

/// The config file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    /// Must be [`API_VERSION`].
    pub api_version: String,
    /// Must be [`KIND`].
    pub kind: String,
    /// `local`, `gce`, `aws`, `pre-existing` (or a provider a third-party build adds), alone or
    /// with settings.
    pub provider: Option<ProviderField>,
    /// Hollow nodes.
    pub nodes: Option<usize>,
    /// `preissued` or `bootstrap`.
    pub node_certs: Option<NodeCerts>,
    /// Extra hollow-node flags.
    pub hollow_node_flags: Option<String>,
    /// Seconds per readiness step.
    pub timeout: Option<u64>,
    /// The master.
    #[serde(default)]
    pub master: MasterConfig,
    /// Hollow nodes as pods on an external cluster.
    #[serde(default)]
    pub external: ExternalConfig,
}

/// The `master` section: the generic master settings every provider may read.
pub type MasterConfig = kubemark_core::registry::MasterSettings;

/// The `provider` field: a name, or a name with settings.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum ProviderField {
    /// `provider: gce`.
    Name(String),
    /// `provider: {name: gce, settings: {project: p}}`.
    Full(ProviderSection),
}

/// `provider: {name: ..., settings: {...}}`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    /// The provider's name [default: local].
    pub name: Option<String>,
    /// Its settings by key (`kubemark start --help` lists them).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

impl ConfigFile {
    /// Reads and checks a config file; errors name the file and what is wrong.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("config {}", path.display()))?;
        let file: ConfigFile = serde_saphyr::from_str(&text).map_err(|e| {
            let msg = e.to_string().replace('\n', " ");
            anyhow::anyhow!("config {}: {}", path.display(), msg.trim())
        })?;
        if file.api_version != API_VERSION || file.kind != KIND {
            bail!(
                "config {}: apiVersion/kind is {}/{}; this kubemark reads {API_VERSION}/{KIND}",
                path.display(),
                file.api_version,
                file.kind
            );
        }
        Ok(file)
    }
}

/// Everything `start` needs, resolved.
#[derive(Debug, Clone)]
pub struct StartConfig {
    /// The provider's name (checked against the registry by `start`).
    pub provider: String,
    /// The provider's settings from the config file (flags and variables apply later, by what
    /// the provider declares).
    pub provider_settings: BTreeMap<String, String>,
    /// Hollow nodes.
    pub nodes: usize,
    /// How nodes get identities.
    pub node_certs: NodeCerts,
    /// Extra hollow-node flags.
    pub hollow_node_flags: String,
    /// Seconds per readiness step.
    pub timeout: u64,
    /// The master section, with flags and env applied.
    pub master: MasterConfig,
    /// The external section, with flags and env applied.
    pub external: ExternalConfig,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_parse<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
    match env(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid value")),
    }
}

/// Applies flags (clap already folded in their own variables) over the other variables over the
/// file over defaults.
pub fn resolve(args: &StartArgs) -> anyhow::Result<StartConfig> {
    let file = match &args.config {
        Some(p) => ConfigFile::read(p)?,
        None => ConfigFile::default(),
    };
    // Upstream: NUM_NODES=${KUBEMARK_NUM_NODES:-10}; --nodes reads KUBEMARK_NUM_NODES itself.
    let nodes = match args.nodes {
        Some(n) => n,
        None => env_parse("NUM_NODES")?.or(file.nodes).unwrap_or(10),
    };
    let mut master = file.master;
    if let Some(h) = &args.master {
        master.host = Some(h.clone());
    }
    if let Some(k) = &args.master_kubeconfig {
        master.kubeconfig = Some(k.clone());
    }
    if let Some(u) = &args.ssh_user {
        master.ssh_user = Some(u.clone());
    }
    if let Some(k) = &args.ssh_key {
        master.ssh_key = Some(k.clone());
    }
    if let Some(k) = &args.ssh_known_hosts {
        master.known_hosts_file = Some(k.clone());
    }
    if args.ssh_accept_new_host_key {
        master.host_key_check = Some(kubemark_core::bootstrap::HostKeyCheck::AcceptNew);
    }
    if let Some(a) = &args.master_ssh_address {
        master.ssh_address = Some(a.clone());
    }
    if let Some(s) = &args.master_size {
        master.size = Some(s.clone());
    }
    let mut external = file.external;
    if let Some(k) = &args.external_kubeconfig {
        external.kubeconfig = Some(k.clone());
    }
    if let Some(i) = &args.image {
        external.image = Some(i.clone());
    }
    if external.image.is_none() {
        // Upstream names the registry, not the image: ours is `<registry>/kubemark:v<version>`.
        external.image = env("KUBEMARK_IMAGE_REGISTRY").map(|r| {
            format!(
                "{}/kubemark:v{}",
                r.trim_end_matches('/'),
                env!("CARGO_PKG_VERSION")
            )
        });
    }
    if let Some(n) = args.nodes_per_pod {
        external.nodes_per_pod = Some(n);
    }
    if let Some(n) = &args.external_namespace {
        external.namespace = Some(n.clone());
    }
    let (file_provider, provider_settings) = match file.provider {
        None => (None, BTreeMap::new()),
        Some(ProviderField::Name(n)) => (Some(n), BTreeMap::new()),
        Some(ProviderField::Full(p)) => (p.name, p.settings),
    };
    Ok(StartConfig {
        external,
        provider: args
            .provider
            .clone()
            .or(file_provider)
            .unwrap_or_else(|| kubemark_core::provider::LOCAL.to_string()),
        provider_settings,
        nodes,
        node_certs: args
            .node_certs
            .or(file.node_certs)
            .unwrap_or(NodeCerts::Preissued),
        hollow_node_flags: args
            .hollow_node_flags
            .clone()
            .or(file.hollow_node_flags)
            .unwrap_or_default(),
        timeout: args.timeout.or(file.timeout).unwrap_or(300),
        master,
    })
}

/// Where and how the hollow-node pods run.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalConfig {
    /// Kubeconfig of the external cluster.
    pub kubeconfig: Option<PathBuf>,
    /// Image with the `hollow-node` binary.
    pub image: Option<String>,
    /// Namespace (default `kubemark`).
    pub namespace: Option<String>,
    /// Hollow nodes per pod (default 10).
    pub nodes_per_pod: Option<usize>,
    /// CPU request per hollow node, millicores (default 5).
    pub cpu_millis_per_node: Option<u64>,
    /// Memory request per hollow node, MiB (default 4).
    pub memory_mib_per_node: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn a_full_file_parses_and_mistakes_are_named() {
        let f = write(
            "apiVersion: kubemark.io/v1alpha1\nkind: ClusterConfig\nprovider: pre-existing\nnodes: 50\n\
             nodeCerts: bootstrap\nmaster:\n  host: 10.0.0.5:2222\n  sshUser: ubuntu\n  hostKeyCheck: accept-new\n  ports:\n    apiserver: 7443\n",
        );
        let c = ConfigFile::read(f.path()).unwrap();
        assert!(matches!(&c.provider, Some(ProviderField::Name(n)) if n == "pre-existing"));
        assert_eq!(c.nodes, Some(50));
        assert_eq!(c.node_certs, Some(NodeCerts::Bootstrap));
        assert_eq!(c.master.host.as_deref(), Some("10.0.0.5:2222"));
        assert_eq!(c.master.ports.apiserver, Some(7443));

        let full = write(
            "apiVersion: kubemark.io/v1alpha1\nkind: ClusterConfig\nprovider:\n  name: gce\n  settings:\n    project: p\n    zone: us-central1-b\n",
        );
        let c = ConfigFile::read(full.path()).unwrap();
        let Some(ProviderField::Full(p)) = c.provider else {
            panic!("{:?}", c.provider)
        };
        assert_eq!(p.name.as_deref(), Some("gce"));
        assert_eq!(
            p.settings.get("zone").map(String::as_str),
            Some("us-central1-b")
        );

        let typo = write("apiVersion: kubemark.io/v1alpha1\nkind: ClusterConfig\nnodez: 5\n");
        let e = ConfigFile::read(typo.path()).unwrap_err().to_string();
        assert!(e.contains("nodez"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");

        let old = write("apiVersion: kubemark.io/v0\nkind: ClusterConfig\n");
        let e = ConfigFile::read(old.path()).unwrap_err().to_string();
        assert!(e.contains("kubemark.io/v1alpha1/ClusterConfig"), "{e}");

        let bad = write("apiVersion: kubemark.io/v1alpha1\nkind: ClusterConfig\nnodes: many\n");
        let e = ConfigFile::read(bad.path()).unwrap_err().to_string();
        assert!(e.starts_with("config "), "{e}");
    }
}
