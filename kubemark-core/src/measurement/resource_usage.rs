//! CPU and memory of the master components and the hollow nodes while a test runs, sampled once
//! a second: from this machine's `/proc` for local processes, and from the master host's `/proc`
//! over SSH for a remote master.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::bootstrap::{SshSession, SshTarget};
use crate::master::{RemoteMaster, RemoteMasterSpec};
use tokio::sync::oneshot;

use super::report::{ComponentUsage, Percentiles, Point};

/// A running sampler.
pub struct Sampler {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Vec<ComponentUsage>>,
}

/// Samples collected per process name.
#[derive(Default)]
struct Series {
    order: Vec<String>,
    last: BTreeMap<String, (u64, Instant)>,
    cpu: BTreeMap<String, Vec<Point>>,
    rss: BTreeMap<String, Vec<f64>>,
}

impl Series {
    /// One reading: `ticks` of CPU so far at `hz` ticks per second, `bytes` resident.
    fn add(&mut self, start: Instant, name: &str, ticks: u64, hz: f64, bytes: u64) {
        if !self.order.iter().any(|n| n == name) {
            self.order.push(name.to_string());
        }
        let now = Instant::now();
        if let Some((t0, at)) = self.last.insert(name.to_string(), (ticks, now)) {
            let secs = now.duration_since(at).as_secs_f64().max(1e-3);
            let mcores = ticks.saturating_sub(t0) as f64 / hz / secs * 1000.0;
            self.cpu.entry(name.to_string()).or_default().push(Point {
                t: start.elapsed().as_secs_f64(),
                v: mcores,
            });
        }
        self.rss
            .entry(name.to_string())
            .or_default()
            .push(bytes as f64 / (1024.0 * 1024.0));
    }

    fn finish(mut self) -> Vec<ComponentUsage> {
        self.order
            .iter()
            .map(|name| {
                let series = self.cpu.remove(name).unwrap_or_default();
                let values: Vec<f64> = series.iter().map(|p| p.v).collect();
                ComponentUsage {
                    name: name.clone(),
                    cpu_millicores: Percentiles::of(&values),
                    rss_mib: Percentiles::of(&self.rss.remove(name).unwrap_or_default()),
                    cpu_over_time: series,
                }
            })
            .collect()
    }
}

impl Sampler {
    /// Samples `local` processes (name, pid) and, when given, the components of a remote master
    /// every second until stopped.
    pub fn start(local: Vec<(String, u32)>, remote: Option<(SshTarget, RemoteMasterSpec)>) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let hz = clock_ticks();
        let done = tokio::spawn(async move {
            let start = Instant::now();
            let mut series = Series::default();
            let ssh = match &remote {
                Some((target, _)) => match SshSession::connect(target).await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot sample the remote master's resource use");
                        None
                    }
                },
                None => None,
            };
            loop {
                if let (Some(ssh), Some((_, spec))) = (&ssh, &remote) {
                    let usage = match RemoteMaster::new(ssh, spec.clone()) {
                        Ok(m) => m.usage().await,
                        Err(e) => Err(e),
                    };
                    match usage {
                        Ok(u) => {
                            for (name, ticks, bytes) in u.components {
                                series.add(start, &name, ticks, u.clock_ticks as f64, bytes);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "sampling the remote master"),
                    }
                }
                for (name, pid) in &local {
                    if let Some((ticks, bytes)) = cpu_ticks_and_rss(*pid) {
                        series.add(start, name, ticks, hz, bytes);
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = &mut stopped => break,
                }
            }
            if let Some(s) = ssh {
                let _ = s.close().await;
            }
            series.finish()
        });
        Self { stop, done }
    }

    /// Stops and returns the usage per process.
    pub async fn stop(self) -> Vec<ComponentUsage> {
        let _ = self.stop.send(());
        self.done.await.unwrap_or_default()
    }
}

/// User+system CPU time in clock ticks and resident memory in bytes; `None` once the process is
/// gone.
pub fn cpu_ticks_and_rss(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks, kib * 1024))
}

/// Clock ticks per second (`CLK_TCK`).
pub fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|t| t as f64)
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let (ticks, rss) =
            super::cpu_ticks_and_rss(std::process::id()).expect("this process exists");
        assert!(rss > 0);
        let _ = ticks;
        assert!(super::cpu_ticks_and_rss(u32::MAX).is_none());
        assert!(super::clock_ticks() > 0.0);
    }
}
