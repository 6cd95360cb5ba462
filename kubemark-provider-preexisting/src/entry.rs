//! The pre-existing provider's registry entry.

use std::sync::Arc;

use kubemark_core::bootstrap::SshTarget;
use kubemark_core::cluster::MasterPlacement;
use kubemark_core::provider::{DynProvider, Error};
use kubemark_core::registry::{
    Placement, PlacementError, PlacementRequest, ProviderEntry, ProviderSettings, SettingSpec,
    remote_master_spec, resolve_host,
};

use crate::{PROVIDER_NAME, PreexistingConfig, PreexistingProviderBuilder, parse_master};

/// The master host, key and kubeconfig are generic master settings (`--master`, `--ssh-key`,
/// `--master-kubeconfig`); this is all the provider itself reads.
const SETTINGS: &[SettingSpec] = &[SettingSpec::new(
    "registry",
    &["KUBEMARK_IMAGE_REGISTRY"],
    "the OCI repository for the hollow-node image",
)];

/// The pre-existing provider in a
/// [`ProviderRegistry`](kubemark_core::registry::ProviderRegistry): the master on a host you
/// have (bootstrapped over SSH) or one that already runs (given by its kubeconfig).
#[derive(Debug, Clone, Copy, Default)]
pub struct PreexistingEntry;

#[async_trait::async_trait]
impl ProviderEntry for PreexistingEntry {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    fn description(&self) -> &'static str {
        "machines you already have (master over SSH, or a running master's kubeconfig)"
    }

    fn settings(&self) -> &'static [SettingSpec] {
        SETTINGS
    }

    fn build(&self, s: &ProviderSettings) -> Result<DynProvider, Error> {
        let config = PreexistingConfig {
            registry: s.string("registry"),
            ..PreexistingConfig::default()
        };
        Ok(Arc::new(
            PreexistingProviderBuilder::new()
                .with_config(config)
                .build()?,
        ))
    }

    async fn placement(&self, request: PlacementRequest<'_>) -> Result<Placement, PlacementError> {
        let m = request.master;
        // The builder's checks of the master settings: both given, files that do not exist.
        PreexistingProviderBuilder::new()
            .with_config(PreexistingConfig {
                master: m.host.clone(),
                master_kubeconfig: m.kubeconfig.clone(),
                ssh_user: m.ssh_user.clone(),
                ssh_key: m.ssh_key.clone(),
                registry: request.settings.string("registry"),
                ..PreexistingConfig::default()
            })
            .build()?;
        request.refuse_component_args()?;
        if let Some(kubeconfig) = &m.kubeconfig {
            if m.host.is_some() {
                return Err(PlacementError::Invalid(
                    "--provider pre-existing: give either a master host (--master, MASTER_IP) or a running master's kubeconfig (--master-kubeconfig), not both".into(),
                ));
            }
            return Ok(Placement::without_infrastructure(
                MasterPlacement::Existing {
                    kubeconfig: kubeconfig.clone(),
                },
            ));
        }
        let Some(host) = &m.host else {
            return Err(PlacementError::Invalid(
                "--provider pre-existing needs the master host (--master ADDRESS[:PORT], MASTER_IP or master.host in the config file) or a running master's kubeconfig (--master-kubeconfig)".into(),
            ));
        };
        let Some(key) = &m.ssh_key else {
            return Err(PlacementError::Invalid(format!(
                "--provider pre-existing needs an SSH key for {host}: --ssh-key, KUBEMARK_SSH_KEY or master.sshKey in the config file"
            )));
        };
        let parsed = parse_master(host, m.ssh_user.as_deref().unwrap_or("root"))?;
        let mut target = SshTarget::new(parsed.host.clone(), parsed.user, key.clone());
        target.port = parsed.port;
        target.known_hosts_file = m.known_hosts_file.clone();
        target.config_file = m.ssh_config.clone();
        target.host_key_check = m.host_key_check.unwrap_or_default();
        let advertise = match m.advertise_address {
            Some(a) => a,
            None => resolve_host(&parsed.host).await?,
        };
        let spec = remote_master_spec(request.cluster, advertise, m, request.timeout);
        Ok(Placement::without_infrastructure(MasterPlacement::Ssh {
            target,
            spec,
            binaries: request.binaries().await?,
        }))
    }
}
