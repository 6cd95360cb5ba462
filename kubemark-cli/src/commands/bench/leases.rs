//! Node Leases as the node lifecycle controller sees them: the gaps between renewals (by a watch)
//! and the steps of each Lease's own `renewTime`.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::StreamExt;

/// Per node Lease, the longest gap between renewals seen by a watch, up to now, and the
/// longest step of its `renewTime`; and every step, of all leases.
pub struct LeaseGaps {
    task: tokio::task::JoinHandle<()>,
    seen: std::sync::Arc<std::sync::Mutex<LeasesSeen>>,
}

/// A phase that fails before `finish` stops the watch too.
impl Drop for LeaseGaps {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct LeasesSeen {
    by_name: BTreeMap<String, LeaseSeen>,
    steps: Vec<f64>,
}

/// Quantiles of a set of durations, seconds (nearest rank).
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepDistribution {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl StepDistribution {
    /// The distribution of `steps`.
    pub fn of(mut steps: Vec<f64>) -> Self {
        if steps.is_empty() {
            return Self::default();
        }
        steps.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = (q * steps.len() as f64).ceil() as usize;
            steps[rank.clamp(1, steps.len()) - 1]
        };
        StepDistribution {
            count: steps.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: steps[steps.len() - 1],
        }
    }
}

/// One form for the idle and the pod phase's report lines, so they read alike.
impl std::fmt::Display for StepDistribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} s, p90 {:.1} s, p99 {:.1} s, max {:.1} s",
            self.p50, self.p90, self.p99, self.max
        )
    }
}

struct LeaseSeen {
    at: Instant,
    pub max_gap: f64,
    renew_time: Option<k8s_openapi::jiff::Timestamp>,
    pub max_renew_step: f64,
}

impl LeaseSeen {
    fn new(at: Instant, renew_time: Option<k8s_openapi::jiff::Timestamp>) -> Self {
        LeaseSeen {
            at,
            max_gap: 0.0,
            renew_time,
            max_renew_step: 0.0,
        }
    }

    /// The lease seen (again) at `at` with `renew_time`; the step of its `renewTime`, if it
    /// moved on. As the node lifecycle controller, only a `renewTime` later than the latest one
    /// seen is a renewal: a write that leaves it, or sets it back (a stale update landing after
    /// a newer one), neither ends a gap nor starts a step.
    fn observe(
        &mut self,
        at: Instant,
        renew_time: Option<k8s_openapi::jiff::Timestamp>,
    ) -> Option<f64> {
        let step = match (self.renew_time, renew_time) {
            (Some(before), Some(after)) if after > before => {
                Some(after.duration_since(before).as_secs_f64())
            }
            // The first renewal of a Lease created without one.
            (None, Some(_)) => None,
            _ => return None,
        };
        self.max_gap = self.max_gap.max(at.duration_since(self.at).as_secs_f64());
        self.at = at;
        self.renew_time = renew_time;
        if let Some(step) = step {
            self.max_renew_step = self.max_renew_step.max(step);
        }
        step
    }
}

/// Lease gaps at the end of the idle phase.
pub struct LeaseGapSummary {
    pub max_gap: f64,
    pub missed: usize,
    pub late: usize,
    pub max_renew_step: f64,
    pub late_by_renew_time: usize,
    pub renew_steps: StepDistribution,
}

impl LeaseGaps {
    /// Starts watching the node Leases.
    pub fn start(client: kube::Client) -> Self {
        use kube::runtime::watcher::{self, Event};
        let seen: std::sync::Arc<std::sync::Mutex<LeasesSeen>> = Default::default();
        let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
            kube::Api::namespaced(client, "kube-node-lease");
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut stream =
                    std::pin::pin!(watcher::watcher(leases, watcher::Config::default()));
                while let Some(event) = stream.next().await {
                    let lease = match event {
                        Ok(Event::Apply(l) | Event::InitApply(l)) => l,
                        _ => continue,
                    };
                    let renew_time = lease.spec.and_then(|s| s.renew_time).map(|t| t.0);
                    let name = lease.metadata.name.unwrap_or_default();
                    let now = Instant::now();
                    let mut seen = seen.lock().expect("not poisoned");
                    let step = seen
                        .by_name
                        .entry(name)
                        .or_insert_with(|| LeaseSeen::new(now, renew_time))
                        .observe(now, renew_time);
                    seen.steps.extend(step);
                }
            })
        };
        Self { task, seen }
    }

    /// The gaps, counting the time since each lease's last renewal as one. The watch stops
    /// (on drop) after the summary is taken.
    pub fn finish(self) -> LeaseGapSummary {
        let now = Instant::now();
        let mut all = self.seen.lock().expect("not poisoned");
        let renew_steps = StepDistribution::of(std::mem::take(&mut all.steps));
        let seen = &all.by_name;
        let gaps: Vec<f64> = seen
            .values()
            .map(|s| s.max_gap.max(now.duration_since(s.at).as_secs_f64()))
            .collect();
        LeaseGapSummary {
            max_gap: gaps.iter().copied().fold(0.0, f64::max),
            missed: gaps.iter().filter(|g| **g > 40.0).count(),
            late: gaps.iter().filter(|g| **g > 15.0).count(),
            max_renew_step: seen.values().map(|s| s.max_renew_step).fold(0.0, f64::max),
            late_by_renew_time: seen.values().filter(|s| s.max_renew_step > 15.0).count(),
            renew_steps,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn lease_gaps_are_told_apart_from_renew_time_steps() {
        let t0 = Instant::now();
        let stamp =
            |s: i64| Some(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + s).unwrap());
        let mut seen = LeaseSeen::new(t0, stamp(0));
        // (seen at s, renewTime s, step expected, longest gap and step after it)
        type Seen = (u64, Option<i64>);
        type Expected = (Option<f64>, (f64, f64));
        let events: [(Seen, Expected); 10] = [
            // Renewed every 10 s, but the first event reached the watch 12 s late.
            ((22, Some(10)), (Some(10.0), (22.0, 10.0))),
            ((24, Some(20)), (Some(10.0), (22.0, 10.0))),
            // A renewal that came 17 s after the one before (its PUT waited).
            ((41, Some(37)), (Some(17.0), (22.0, 17.0))),
            // No renewTime, the same one (another field written), or one set back (a stale
            // write landing late): no renewal; the next step counts from the latest renewTime.
            ((42, None), (None, (22.0, 17.0))),
            ((43, Some(37)), (None, (22.0, 17.0))),
            ((44, Some(31)), (None, (22.0, 17.0))),
            ((51, Some(47)), (Some(10.0), (22.0, 17.0))),
            // Writes that renew nothing do not hide a gap the controller would see.
            ((60, Some(47)), (None, (22.0, 17.0))),
            ((70, Some(40)), (None, (22.0, 17.0))),
            ((80, Some(76)), (Some(29.0), (29.0, 29.0))),
        ];
        for ((at, renew), (step, (gap, longest))) in events {
            let got = seen.observe(t0 + Duration::from_secs(at), renew.and_then(stamp));
            assert_eq!(got, step, "at {at} s");
            assert_eq!(
                (seen.max_gap, seen.max_renew_step),
                (gap, longest),
                "at {at} s"
            );
        }
    }

    #[test]
    fn renewal_steps_are_summarised_by_nearest_rank() {
        assert_eq!(StepDistribution::of(vec![]), StepDistribution::default());
        // 100 renewals: 97 on time, three late; the median is the cadence, p99 the tail.
        let mut steps = vec![10.2; 97];
        steps.extend([16.0, 25.0, 39.0]);
        steps.reverse();
        let d = StepDistribution::of(steps);
        assert_eq!((d.count, d.p50, d.p90), (100, 10.2, 10.2));
        assert_eq!((d.p99, d.max), (25.0, 39.0));
        assert_eq!(
            d.to_string(),
            "p50 10.2 s, p90 10.2 s, p99 25.0 s, max 39.0 s"
        );
        let one = StepDistribution::of(vec![12.0]);
        assert_eq!((one.p50, one.p99, one.max), (12.0, 12.0, 12.0));
    }
}
