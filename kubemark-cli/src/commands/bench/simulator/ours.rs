//! Our hollow nodes: one `kubemark hollow-node` process for all of them, as `kubemark start`
//! runs them locally; as shipped, without the kubelet API, or on a stock connection.

use std::time::{Duration, Instant};

use kubemark_core::master::LocalControlPlane;

use super::common::{Joined, Simulator, client_limits};
use crate::cli::BenchArgs;
use crate::commands::nodes::{self, MasterAccess};
use kubemark_core::cluster::HollowProcess;

/// Which build of our hollow node a measurement runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// As shipped.
    Default,
    /// With its kubelet API off (`--kubelet-port=0`).
    NoApi,
    /// Connecting through tokio-rustls with h2's defaults (`--stock-connection`).
    StockConnection,
}

/// Our hollow nodes, as the variant says.
pub struct Ours {
    variant: Variant,
    running: Option<Running>,
}

/// The hollow process and its files while it runs.
struct Running {
    hollow: HollowProcess,
    guard: HollowGuard,
    _work: tempfile::TempDir,
}

/// Kills the hollow-node process group `pid` leads when dropped, unless disarmed after an
/// orderly stop (the pid may be reused afterwards).
struct HollowGuard(Option<u32>);

impl HollowGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for HollowGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let group = nix::unistd::Pid::from_raw(-(pid as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Ours {
    /// Ours, as `variant` says.
    pub fn new(variant: Variant) -> Self {
        Self {
            variant,
            running: None,
        }
    }
}

impl Simulator for Ours {
    fn implementation(&self) -> &'static str {
        match self.variant {
            Variant::Default => "kubemark-rs",
            Variant::NoApi => "ours-noapi",
            Variant::StockConnection => "ours-stockconn",
        }
    }

    fn announce(&self, n: usize) -> String {
        match self.variant {
            Variant::Default => format!("measuring {n} hollow nodes ..."),
            Variant::NoApi => format!("measuring {n} hollow nodes without their kubelet API ..."),
            Variant::StockConnection => {
                format!("measuring {n} hollow nodes on a stock tokio-rustls + h2 connection ...")
            }
        }
    }

    async fn join(
        &mut self,
        cp: &LocalControlPlane,
        n: usize,
        args: &BenchArgs,
    ) -> anyhow::Result<Joined> {
        let work = tempfile::tempdir()?;
        let master = MasterAccess {
            server: cp.server_url(),
            admin_kubeconfig: cp.kubeconfig_path().to_path_buf(),
            pki_dir: cp.work_dir().join("pki"),
        };
        let start = Instant::now();
        // No events: upstream's hollow kubelet has no event client and sends none.
        let mut flags = format!("--no-events {}", client_limits(args));
        match self.variant {
            Variant::Default => {}
            Variant::NoApi => flags.push_str(" --kubelet-port=0"),
            Variant::StockConnection => flags.push_str(" --stock-connection"),
        }
        let hollow = nodes::spawn(&master, work.path(), n, &flags, args.node_certs).await?;
        let guard = HollowGuard(Some(hollow.pid));
        let running = self.running.insert(Running {
            hollow,
            guard,
            _work: work,
        });
        nodes::wait_ready(&master, &running.hollow, Duration::from_secs(args.timeout)).await?;
        Ok(Joined {
            pids: vec![running.hollow.pid],
            seconds_to_ready: start.elapsed().as_secs_f64(),
        })
    }

    fn scraped(&self) -> bool {
        self.variant == Variant::Default
    }

    async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            nodes::stop(&running.hollow).await;
            running.guard.disarm();
        }
    }
}
