//! CPU and memory of the master components (and the hollow nodes) of a local cluster, sampled
//! from `/proc` once a second while a test runs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::report::{ComponentUsage, Percentiles, Point};

/// A running sampler.
pub struct Sampler {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Vec<ComponentUsage>>,
}

impl Sampler {
    /// Samples `processes` (name, pid) every second until stopped.
    pub fn start(processes: Vec<(String, u32)>) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let hz = crate::procfs::clock_ticks();
        let done = tokio::spawn(async move {
            let start = Instant::now();
            let mut last: BTreeMap<String, (u64, Instant)> = BTreeMap::new();
            let mut cpu: BTreeMap<String, Vec<Point>> = BTreeMap::new();
            let mut rss: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            loop {
                for (name, pid) in &processes {
                    let Some((ticks, bytes)) = crate::procfs::cpu_ticks_and_rss(*pid) else {
                        continue;
                    };
                    let now = Instant::now();
                    if let Some((t0, at)) = last.insert(name.clone(), (ticks, now)) {
                        let secs = now.duration_since(at).as_secs_f64().max(1e-3);
                        let mcores = (ticks.saturating_sub(t0)) as f64 / hz / secs * 1000.0;
                        cpu.entry(name.clone()).or_default().push(Point {
                            t: start.elapsed().as_secs_f64(),
                            v: mcores,
                        });
                    }
                    rss.entry(name.clone())
                        .or_default()
                        .push(bytes as f64 / (1024.0 * 1024.0));
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = &mut stopped => break,
                }
            }
            processes
                .iter()
                .map(|(name, _)| {
                    let series = cpu.remove(name).unwrap_or_default();
                    let values: Vec<f64> = series.iter().map(|p| p.v).collect();
                    ComponentUsage {
                        name: name.clone(),
                        cpu_millicores: Percentiles::of(&values),
                        rss_mib: Percentiles::of(&rss.remove(name).unwrap_or_default()),
                        cpu_over_time: series,
                    }
                })
                .collect()
        });
        Self { stop, done }
    }

    /// Stops and returns the usage per process.
    pub async fn stop(self) -> Vec<ComponentUsage> {
        let _ = self.stop.send(());
        self.done.await.unwrap_or_default()
    }
}
