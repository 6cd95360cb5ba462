//! The processes of a measurement: their CPU, memory and sockets from `/proc`, and a guard that
//! kills them however a measurement ends.

use std::time::Duration;

use anyhow::Context;
use kubemark_core::measurement::resource_usage::cpu_ticks_and_rss;

/// Processes of a measurement, killed (and reaped) when dropped: however a measurement ends,
/// an interrupted or failed run leaves nothing running.
#[derive(Default)]
pub struct Children(pub Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sockets process `pid` holds.
pub fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// CPU ticks and RSS bytes summed over `pids`.
pub fn totals(pids: &[u32]) -> anyhow::Result<(u64, u64)> {
    let mut ticks = 0;
    let mut rss = 0;
    for pid in pids {
        let (t, r) = cpu_ticks_and_rss(*pid).with_context(|| format!("process {pid} is gone"))?;
        ticks += t;
        rss += r;
    }
    Ok((ticks, rss))
}

/// How often the idle and scrape phases sample the hollow processes' RSS.
pub const RSS_SAMPLE_EVERY: Duration = Duration::from_secs(5);
