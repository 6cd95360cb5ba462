//! The registry half of the conformance suite (feature `conformance`): what a provider's entry
//! declares. The provider half is [`crate::provider::conformance`].

use super::{ProviderEntry, ProviderSettings, valid_name};
use crate::provider::DynProvider;

/// Checks what a provider's registry entry declares, and returns the provider it builds from
/// `valid` (settings that must build) for [`Conformance::new`](crate::provider::conformance::Conformance::new). Rules: the name is well-formed
/// and is the built provider's [`Provider::name`](crate::provider::Provider::name); setting keys and environment variables are
/// well-formed and unique; help texts are one line; the required settings alone build; a missing
/// required setting and an undeclared one are refused with an error naming them.
pub fn check_entry(entry: &dyn ProviderEntry, valid: &ProviderSettings) -> DynProvider {
    let name = entry.name();
    assert!(valid_name(name), "[{name}] the entry's name is malformed");
    let one_line = |s: &str| !s.trim().is_empty() && !s.contains('\n');
    assert!(
        one_line(entry.description()),
        "[{name}] the description must be one non-empty line"
    );
    let declared = entry.settings();
    let mut keys = std::collections::BTreeSet::new();
    let mut vars = std::collections::BTreeSet::new();
    for s in declared {
        assert!(
            valid_name(s.key),
            "[{name}] setting key {:?} is malformed",
            s.key
        );
        assert!(
            keys.insert(s.key),
            "[{name}] setting {:?} is declared twice",
            s.key
        );
        assert!(
            one_line(s.help),
            "[{name}] setting {:?}: help must be one line",
            s.key
        );
        for v in s.env {
            let well_formed = v.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                && v.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            assert!(
                well_formed,
                "[{name}] setting {:?}: variable {v:?} is malformed",
                s.key
            );
            assert!(vars.insert(*v), "[{name}] variable {v:?} is declared twice");
        }
    }
    let provider = entry
        .provider(valid)
        .unwrap_or_else(|e| panic!("[{name}] the valid settings do not build: {e}"));
    assert_eq!(
        provider.name(),
        name,
        "[{name}] the built provider must have the entry's name"
    );
    let required: ProviderSettings = valid
        .iter()
        .filter(|(k, _)| declared.iter().any(|s| s.key == *k && s.required))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Err(e) = entry.provider(&required) {
        panic!("[{name}] the required settings alone must build: {e}");
    }
    for s in declared.iter().filter(|s| s.required) {
        let mut missing = valid.clone();
        missing.remove(s.key);
        match entry.provider(&missing) {
            Ok(_) => panic!("[{name}] built without the required setting {:?}", s.key),
            Err(e) => assert!(
                e.to_string().contains(s.key),
                "[{name}] the error for a missing {:?} must name it: {e}",
                s.key
            ),
        }
    }
    let unknown = valid.clone().with("no-such-setting", "x");
    match entry.provider(&unknown) {
        Ok(_) => panic!("[{name}] built with an undeclared setting"),
        Err(e) => assert!(
            e.to_string().contains("no-such-setting"),
            "[{name}] the error for an undeclared setting must name it: {e}"
        ),
    }
    provider
}
