//! A provider's settings, declared by its registry entry ([`crate::registry`]) and recorded in
//! a cluster's state.

use std::collections::BTreeMap;

/// One setting a provider reads: declared as data so that front ends list it in their help and
/// errors, and the conformance suite checks the declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingSpec {
    /// The key (`project`, `ssh-cidr`): lowercase letters, digits and `-`, unique per provider.
    pub key: &'static str,
    /// Environment variables that give it, first set wins (upstream's names where upstream had
    /// one); may be empty.
    pub env: &'static [&'static str],
    /// One line for `--help` and errors.
    pub help: &'static str,
    /// Whether [`ProviderEntry::provider`] refuses to build without it.
    pub required: bool,
    /// A secret (a token, a password): never written to the cluster's state, so it is read from
    /// the environment (or given again) whenever the provider is rebuilt.
    pub secret: bool,
}

impl SettingSpec {
    /// An optional, non-secret setting.
    pub const fn new(key: &'static str, env: &'static [&'static str], help: &'static str) -> Self {
        Self {
            key,
            env,
            help,
            required: false,
            secret: false,
        }
    }

    /// The same setting, required.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// The same setting, secret.
    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// `key` with its variables, for messages: `project (PROJECT, GOOGLE_CLOUD_PROJECT)`.
    pub fn describe(&self) -> String {
        if self.env.is_empty() {
            self.key.to_string()
        } else {
            format!("{} ({})", self.key, self.env.join(", "))
        }
    }
}

/// A provider's settings by key, resolved by the front end (flags, environment, config file,
/// a cluster's recorded state).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ProviderSettings(BTreeMap<String, String>);

impl ProviderSettings {
    /// No settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`, if set and not blank.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// An owned copy of [`get`](Self::get).
    pub fn string(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_string)
    }

    /// Sets `key` (replacing a previous value).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// The same settings with `key` set.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// Every key and value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether none is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The settings `declared` does not mark secret: what a cluster's state may record.
    pub fn public(&self, declared: &[SettingSpec]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(k, _)| declared.iter().any(|s| s.key == *k && !s.secret))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

impl FromIterator<(String, String)> for ProviderSettings {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}
