//! The CLI's side of the provider registry: resolving a provider's declared settings from
//! `--provider-setting`, their environment variables and the config file, and rebuilding the
//! provider a cluster was started with from its state.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use kubemark_core::cluster::ClusterState;
use kubemark_core::provider::DynProvider;
use kubemark_core::registry::{ProviderEntry, ProviderRegistry, ProviderSettings};

/// `start --help`'s list of every provider's settings.
pub fn settings_help(registry: &ProviderRegistry) -> String {
    let mut help = String::from(
        "Provider settings (--provider-setting KEY=VALUE, the variables named, or provider.settings in the config file):",
    );
    for entry in registry.entries() {
        help.push_str(&format!("\n  {}:", entry.name()));
        if entry.settings().is_empty() {
            help.push_str(" none");
        }
        for s in entry.settings() {
            help.push_str(&format!(
                "\n    {}{}{}: {}",
                s.describe(),
                if s.required { " [required]" } else { "" },
                if s.secret { " [secret]" } else { "" },
                s.help
            ));
        }
    }
    help
}

/// `KEY=VALUE` flags.
fn parse_flags(flags: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    flags
        .iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("--provider-setting {f}: expected KEY=VALUE"),
        })
        .collect()
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The settings of `entry`: `flags` win over each setting's variables, which win over `file`.
pub fn resolve(
    entry: &dyn ProviderEntry,
    flags: &[String],
    file: &BTreeMap<String, String>,
) -> anyhow::Result<ProviderSettings> {
    let mut settings = ProviderSettings::new();
    for (k, v) in file {
        settings.set(k.clone(), v.clone());
    }
    for s in entry.settings() {
        if let Some(v) = s.env.iter().find_map(|n| env(n)) {
            settings.set(s.key, v);
        }
    }
    for (k, v) in parse_flags(flags)? {
        settings.set(k, v);
    }
    Ok(settings)
}

/// The provider `name` built from the environment and `flags`.
pub fn build(
    registry: &ProviderRegistry,
    name: &str,
    flags: &[String],
) -> anyhow::Result<DynProvider> {
    let entry = registry.get(name)?;
    let settings = resolve(entry.as_ref(), flags, &BTreeMap::new())?;
    Ok(entry.provider(&settings)?)
}

/// The provider a cluster was started with: its recorded settings over the environment's
/// (secrets are never recorded), `flags` over both. An unknown name is an error, never a
/// fallback.
pub fn from_state(
    registry: &ProviderRegistry,
    state: &ClusterState,
    flags: &[String],
) -> anyhow::Result<DynProvider> {
    let entry = registry.get(&state.provider).with_context(|| {
        format!(
            "cluster {} was started with the {:?} provider",
            state.cluster, state.provider
        )
    })?;
    let mut settings = resolve(entry.as_ref(), &[], &BTreeMap::new())?;
    for (k, v) in state.provider_settings.iter() {
        settings.set(k, v);
    }
    for (k, v) in parse_flags(flags)? {
        settings.set(k, v);
    }
    Ok(entry.provider(&settings)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_malformed_flags_are_named() {
        let registry = crate::bundled_providers();
        let entry = registry.get("gce").unwrap();
        let file = BTreeMap::from([
            ("network".to_string(), "from-file".to_string()),
            ("image".to_string(), "img".to_string()),
        ]);
        let s = resolve(entry.as_ref(), &["network=from-flag".into()], &file).unwrap();
        assert_eq!(s.get("network"), Some("from-flag"));
        assert_eq!(s.get("image"), Some("img"));
        let e = resolve(entry.as_ref(), &["network".into()], &file).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--provider-setting network: expected KEY=VALUE"
        );
        let help = settings_help(&registry);
        assert!(
            help.contains(
                "project (PROJECT, CLOUDSDK_CORE_PROJECT, GOOGLE_CLOUD_PROJECT) [required]"
            ),
            "{help}"
        );
        assert!(help.contains("\n  local: none"), "{help}");
    }
}
