//! The `local` provider's entry: the master as processes on this machine.

use std::sync::Arc;

use super::{
    Placement, PlacementError, PlacementRequest, ProviderEntry, ProviderSettings, SettingSpec,
};
use crate::cluster::MasterPlacement;
use crate::master::LocalOptions;
use crate::provider::{DynProvider, Error, LOCAL, LocalProvider};

/// The registry entry of [`LocalProvider`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalEntry;

#[async_trait::async_trait]
impl ProviderEntry for LocalEntry {
    fn name(&self) -> &'static str {
        LOCAL
    }

    fn description(&self) -> &'static str {
        "the master as processes on this machine; no cloud needed"
    }

    fn settings(&self) -> &'static [SettingSpec] {
        &[]
    }

    fn build(&self, _: &ProviderSettings) -> Result<DynProvider, Error> {
        Ok(Arc::new(LocalProvider))
    }

    async fn placement(&self, request: PlacementRequest<'_>) -> Result<Placement, PlacementError> {
        let mut options = LocalOptions::new(request.binaries().await?);
        options.cluster = request.cluster.clone();
        options.work_dir = Some(request.dir.join("master"));
        options.keep_data = request.keep_data;
        options.ready_timeout = request.timeout;
        request.component_args.apply(&mut options);
        Ok(Placement::without_infrastructure(MasterPlacement::Local(
            options,
        )))
    }
}
