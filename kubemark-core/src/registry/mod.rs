//! The provider registry: how a front end (the `kubemark` CLI, or a harness) knows providers
//! without naming them in its code.
//!
//! Each provider crate exports one [`ProviderEntry`]: its name, the settings it reads (declared
//! as data, so a front end can list them and check them), how it builds its
//! [`Provider`](crate::provider::Provider) from resolved settings, and where the master of a
//! cluster goes ([`ProviderEntry::placement`]). A front end puts the entries it bundles in a
//! [`ProviderRegistry`]; adding a provider is one crate and one [`ProviderRegistry::with`].
//!
//! ```
//! use kubemark_core::registry::{LocalEntry, ProviderRegistry, ProviderSettings};
//!
//! let registry = ProviderRegistry::new().with(LocalEntry);
//! let entry = registry.get("local").unwrap();
//! let provider = entry.provider(&ProviderSettings::new()).unwrap();
//! assert_eq!(provider.name(), "local");
//! assert!(registry.get("nope").unwrap_err().to_string().contains("local"));
//! ```

#[cfg(feature = "conformance")]
pub mod conformance;
mod local;
mod placement;

use std::sync::Arc;

pub use local::LocalEntry;
pub use placement::{
    BinarySource, ComponentArgs, MasterPortSettings, MasterSettings, Placement, PlacementError,
    PlacementRequest, parse_host_port, provisioned_vm, remote_master_spec, resolve_host,
};

use crate::provider::{DynProvider, Error, ErrorKind};
pub use crate::provider::{ProviderSettings, SettingSpec};

/// What a provider crate exports: the provider's name, its settings, how to build it and where
/// it puts a cluster's master. Implemented by a unit struct (`GceEntry`) the crate exports.
#[async_trait::async_trait]
pub trait ProviderEntry: std::fmt::Debug + Send + Sync {
    /// The name users select it by (`--provider NAME`), equal to the built provider's
    /// [`name`](crate::provider::Provider::name): lowercase letters, digits and `-`.
    fn name(&self) -> &'static str;

    /// One line for `--help`.
    fn description(&self) -> &'static str;

    /// Every setting [`build`](Self::build) reads.
    fn settings(&self) -> &'static [SettingSpec];

    /// Builds the provider from settings that [`provider`](Self::provider) has checked.
    fn build(&self, settings: &ProviderSettings) -> Result<DynProvider, Error>;

    /// Where a cluster's master goes, and the infrastructure to create for it.
    async fn placement(&self, request: PlacementRequest<'_>) -> Result<Placement, PlacementError>;

    /// Checks `settings` against the declaration (no unknown key, every required one set), then
    /// builds the provider. Front ends call this, never `build`.
    fn provider(&self, settings: &ProviderSettings) -> Result<DynProvider, Error> {
        let declared = self.settings();
        let invalid =
            |message: String| Error::new(ErrorKind::InvalidConfig, self.name(), "build", message);
        for (key, _) in settings.iter() {
            if !declared.iter().any(|s| s.key == key) {
                let known: Vec<&str> = declared.iter().map(|s| s.key).collect();
                return Err(invalid(format!(
                    "unknown setting {key:?}; the {} provider reads {}",
                    self.name(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        for s in declared.iter().filter(|s| s.required) {
            if settings.get(s.key).is_none() {
                return Err(invalid(format!(
                    "missing required setting {}: {}",
                    s.describe(),
                    s.help
                )));
            }
        }
        self.build(settings)
    }
}

/// A shared entry.
pub type DynEntry = Arc<dyn ProviderEntry>;

/// The providers a front end knows, by name.
#[derive(Debug, Clone, Default)]
pub struct ProviderRegistry {
    entries: Vec<DynEntry>,
}

/// A provider name no entry of the registry has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {name:?}; known providers: {}", known.join(", "))]
pub struct UnknownProvider {
    /// The name asked for.
    pub name: String,
    /// The registry's names.
    pub known: Vec<String>,
}

/// Whether `name` is a well-formed provider name (or setting key): lowercase ASCII letters,
/// digits and `-`, starting with a letter, at most 63 characters.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl ProviderRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry with `entry` added.
    ///
    /// # Panics
    /// When the name is malformed or taken: a registry is assembled in code, so that is a bug
    /// of the program that builds it.
    pub fn with(mut self, entry: impl ProviderEntry + 'static) -> Self {
        let name = entry.name();
        assert!(valid_name(name), "provider name {name:?} is malformed");
        assert!(
            self.entries.iter().all(|e| e.name() != name),
            "provider {name:?} is registered twice"
        );
        self.entries.push(Arc::new(entry));
        self
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Result<&DynEntry, UnknownProvider> {
        self.entries
            .iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| UnknownProvider {
                name: name.to_string(),
                known: self.names().map(str::to_string).collect(),
            })
    }

    /// The names, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.name())
    }

    /// The entries, in registration order.
    pub fn entries(&self) -> &[DynEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_unknown_ones_list_the_known() {
        for good in ["local", "pre-existing", "gce2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "Local", "2x", "a_b", "x-", "a b"] {
            assert!(!valid_name(bad), "{bad}");
        }
        let r = ProviderRegistry::new().with(LocalEntry);
        let e = r.get("gcp").unwrap_err().to_string();
        assert_eq!(e, "unknown provider \"gcp\"; known providers: local");
    }

    #[test]
    fn public_settings_leave_secrets_and_undeclared_keys_out() {
        const DECLARED: &[SettingSpec] = &[
            SettingSpec::new("zone", &["ZONE"], "the zone"),
            SettingSpec::new("token", &["TOKEN"], "a token").secret(),
        ];
        let s = ProviderSettings::new()
            .with("zone", "z1")
            .with("token", "t0p")
            .with("other", "x");
        let public = s.public(DECLARED);
        assert_eq!(public.iter().collect::<Vec<_>>(), [("zone", "z1")]);
    }
}
