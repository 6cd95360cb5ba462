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
    /// The master's machine type (`KUBEMARK_MASTER_SIZE`); `None` picks one by node count.
    pub master_machine_type: Option<String>,
    /// The VPC network (default `default`).
    pub network: Option<String>,
    /// The Compute API endpoint (for emulators and tests); `None` is the real API.
    pub endpoint: Option<String>,
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
