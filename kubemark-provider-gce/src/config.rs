//! Configuration of the GCE provider.

/// Where and how the GCE provider creates the master.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct GceConfig {
    /// The GCP project (`PROJECT`, `CLOUDSDK_CORE_PROJECT` or `GOOGLE_CLOUD_PROJECT`).
    pub project: Option<String>,
    /// The zone of the master (`ZONE` or `KUBEMARK_ZONE`), e.g. `us-central1-b`.
    pub zone: Option<String>,
    /// The master's machine type (`KUBEMARK_MASTER_SIZE`); `None` is `n2-standard-4`.
    pub master_machine_type: Option<String>,
    /// The VPC network (`NETWORK`, default `default`).
    pub network: Option<String>,
    /// The master's boot image (`KUBEMARK_GCE_IMAGE`); `None` is Debian 12's image family.
    pub image: Option<String>,
    /// CIDR allowed to reach SSH on the master (`KUBEMARK_SSH_CIDR`); `None` opens no SSH rule.
    pub ssh_cidr: Option<String>,
    /// The login user the SSH key is installed for (`KUBEMARK_SSH_USER`, default `kubemark`).
    pub ssh_user: Option<String>,
    /// The Compute API endpoint (`KUBEMARK_GCE_ENDPOINT`, emulators and tests); `None` is the
    /// real API.
    pub endpoint: Option<String>,
    /// The Artifact Registry API endpoint (`KUBEMARK_GCE_REGISTRY_ENDPOINT`); `None` is the real
    /// API.
    pub registry_endpoint: Option<String>,
    /// The Docker host of the image repository (`KUBEMARK_GCE_REGISTRY_HOST`); `None` is
    /// `<region>-docker.pkg.dev`.
    pub registry_host: Option<String>,
}

impl GceConfig {
    /// The region of the configured zone (`us-central1-b` → `us-central1`).
    pub fn region(&self) -> Option<&str> {
        self.zone
            .as_deref()
            .and_then(|z| z.rsplit_once('-'))
            .map(|(r, _)| r)
    }
}
