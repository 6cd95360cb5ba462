//! Shared helpers of the workspace-level integration tests (in `tests/tests/`), which run against
//! a real control plane built by `scripts/build-control-plane.sh`.

use kubemark_core::master::{LocalControlPlane, LocalOptions};

/// Starts a local control plane with the binaries found the documented way, failing the test with
/// the reason (and the fix) when they are missing: integration tests never skip silently.
pub async fn start_control_plane() -> LocalControlPlane {
    let options =
        LocalOptions::from_env().unwrap_or_else(|e| panic!("control-plane binaries: {e}"));
    LocalControlPlane::start(options)
        .await
        .unwrap_or_else(|e| panic!("local control plane did not start: {e}"))
}
