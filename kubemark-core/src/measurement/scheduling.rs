//! Scheduling throughput: pods scheduled per second, as ClusterLoader2 samples it while pods are
//! pending.

use std::collections::HashMap;

use super::report::Percentiles;

/// The distribution of pods scheduled per second, given the second (since any fixed start) in
/// which each pod was seen scheduled: over the seconds from the first to the last scheduling,
/// those without any counted as zero.
pub fn throughput(scheduled_in_second: impl IntoIterator<Item = u64>) -> Percentiles {
    let mut per_second: HashMap<u64, usize> = HashMap::new();
    for s in scheduled_in_second {
        *per_second.entry(s).or_default() += 1;
    }
    let seconds: Vec<f64> = match (per_second.keys().min(), per_second.keys().max()) {
        (Some(lo), Some(hi)) => (*lo..=*hi)
            .map(|s| per_second.get(&s).copied().unwrap_or(0) as f64)
            .collect(),
        _ => Vec::new(),
    };
    Percentiles::of(&seconds)
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_without_scheduling_between_the_first_and_last_count_as_zero() {
        let t = super::throughput([3, 3, 3, 5, 5]);
        assert_eq!((t.count, t.max, t.p50), (3, 3.0, 2.0));
        assert_eq!(super::throughput([]).count, 0);
    }
}
