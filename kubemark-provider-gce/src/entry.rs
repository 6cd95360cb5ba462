//! The gce provider's registry entry.

use std::sync::Arc;

use kubemark_core::provider::{DynProvider, Error};
use kubemark_core::registry::{
    Placement, PlacementError, PlacementRequest, ProviderEntry, ProviderSettings, SettingSpec,
    provisioned_vm,
};

use crate::{GceConfig, GceProviderBuilder, PROVIDER_NAME};

/// What the gce provider reads. The master's machine type and login user are generic master
/// settings (`--master-size`, `--ssh-user`), passed in its [`MasterSpec`](kubemark_core::provider::MasterSpec).
const SETTINGS: &[SettingSpec] = &[
    SettingSpec::new(
        "project",
        &["PROJECT", "CLOUDSDK_CORE_PROJECT", "GOOGLE_CLOUD_PROJECT"],
        "the GCP project",
    )
    .required(),
    SettingSpec::new(
        "zone",
        &["KUBEMARK_ZONE", "ZONE"],
        "the master's zone, e.g. us-central1-b",
    )
    .required(),
    SettingSpec::new(
        "network",
        &["NETWORK"],
        "the VPC network [default: default]",
    ),
    SettingSpec::new(
        "image",
        &["KUBEMARK_GCE_IMAGE"],
        "the master's boot image [default: Debian 12's image family]",
    ),
    SettingSpec::new(
        "ssh-cidr",
        &["KUBEMARK_SSH_CIDR"],
        "CIDR allowed to reach SSH on the master [default: none]",
    ),
    SettingSpec::new(
        "endpoint",
        &["KUBEMARK_GCE_ENDPOINT"],
        "the Compute API endpoint (emulators) [default: the real API]",
    ),
    SettingSpec::new(
        "registry-endpoint",
        &["KUBEMARK_GCE_REGISTRY_ENDPOINT"],
        "the Artifact Registry API endpoint [default: the real API]",
    ),
    SettingSpec::new(
        "registry-host",
        &["KUBEMARK_GCE_REGISTRY_HOST"],
        "the image repository's Docker host [default: <region>-docker.pkg.dev]",
    ),
];

/// The gce provider in a [`ProviderRegistry`](kubemark_core::registry::ProviderRegistry):
/// the master on a Compute Engine VM bootstrapped over SSH.
#[derive(Debug, Clone, Copy, Default)]
pub struct GceEntry;

#[async_trait::async_trait]
impl ProviderEntry for GceEntry {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    fn description(&self) -> &'static str {
        "Google Compute Engine: a master VM bootstrapped over SSH"
    }

    fn settings(&self) -> &'static [SettingSpec] {
        SETTINGS
    }

    fn build(&self, s: &ProviderSettings) -> Result<DynProvider, Error> {
        let config = GceConfig {
            project: s.string("project"),
            zone: s.string("zone"),
            network: s.string("network"),
            image: s.string("image"),
            ssh_cidr: s.string("ssh-cidr"),
            endpoint: s.string("endpoint"),
            registry_endpoint: s.string("registry-endpoint"),
            registry_host: s.string("registry-host"),
            ..GceConfig::default()
        };
        Ok(Arc::new(
            GceProviderBuilder::new().with_config(config).build()?,
        ))
    }

    async fn placement(&self, request: PlacementRequest<'_>) -> Result<Placement, PlacementError> {
        provisioned_vm(PROVIDER_NAME, &request).await
    }
}
