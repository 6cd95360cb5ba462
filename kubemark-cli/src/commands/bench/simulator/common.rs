//! What every simulator provides, and what they share: the control plane's options and the
//! hollow nodes' client limits.

use kubemark_core::master::{LocalControlPlane, LocalOptions};

use crate::cli::BenchArgs;

/// Nodes as one implementation simulates them. A measurement starts a control plane, lets the
/// simulator join its nodes, measures, and stops the simulator before the control plane.
/// Dropped without [`Simulator::stop`] (an interrupted run), it kills what it started.
pub trait Simulator {
    /// Its name in the report and the JSON: `kubemark-rs`, `ours-noapi`, `ours-stockconn`,
    /// `upstream` or `kwok`.
    fn implementation(&self) -> &'static str;

    /// The line that announces a measurement of `n` nodes.
    fn announce(&self, n: usize) -> String;

    /// Checks what it needs (binaries, limits) before a control plane is started for it.
    fn check(&self, _args: &BenchArgs) -> anyhow::Result<()> {
        Ok(())
    }

    /// Starts `n` nodes against `cp` and waits until all are Ready: the join and ready phase.
    async fn join(
        &mut self,
        cp: &LocalControlPlane,
        n: usize,
        args: &BenchArgs,
    ) -> anyhow::Result<Joined>;

    /// Whether the scrape phase (`--scrape`) measures it.
    fn scraped(&self) -> bool {
        false
    }

    /// Stops the nodes and removes what they left.
    async fn stop(&mut self);
}

/// Nodes joined and Ready.
pub struct Joined {
    /// The processes hosting the nodes.
    pub pids: Vec<u32>,
    /// From the start of the join until the last node was Ready.
    pub seconds_to_ready: f64,
}

/// The hollow nodes' client rate limit, as flags both ours and upstream's hollow node take.
pub fn client_limits(args: &BenchArgs) -> String {
    format!(
        "--kube-api-qps={} --kube-api-burst={}",
        args.kube_api_qps, args.kube_api_burst
    )
}

/// The control plane every implementation of the run is measured against.
pub fn local_options(
    binaries: kubemark_core::binaries::BinarySet,
    args: &BenchArgs,
) -> anyhow::Result<LocalOptions> {
    let mut options = LocalOptions::new(binaries);
    crate::master_args::MasterArgs::parse(&args.master_args)?.apply(&mut options);
    Ok(options)
}
