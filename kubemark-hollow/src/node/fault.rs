//! Fault injection: make chosen nodes report a problem, go NotReady, stop heartbeating
//! (partition) or flap, now or after a delay, for a while or until told otherwise.
//!
//! Driven by an annotation on the Node, so any client can inject at scale:
//! `kubectl annotate nodes -l pool=a kubemark.io/fault='partition;after=30s;for=2m'`, and
//! `kubectl annotate node hollow-node-3 kubemark.io/fault-` heals. The hollow node reads it from
//! the watch on its own Node, which stays open during a partition (a real partitioned kubelet
//! would see nothing; this is the one thing the simulation keeps).

use std::time::Duration;

use tokio::time::Instant;

/// The annotation that carries the fault.
pub const FAULT_ANNOTATION: &str = "kubemark.io/fault";

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FaultKind {
    /// Nothing.
    #[default]
    Healthy,
    /// node-problem-detector reports this condition True (e.g. `KernelDeadlock`) with an event.
    Problem(String),
    /// The kubelet reports Ready=False but keeps renewing its lease.
    NotReady,
    /// No lease renewal and no status writes at all, as when the node is cut off.
    Partition,
    /// Ready alternates between True and False every period.
    Flap(Duration),
}

/// A fault with its window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// When it starts.
    pub from: Option<Instant>,
    /// When it ends (`None`: until the annotation is removed).
    pub until: Option<Instant>,
}

fn duration(s: &str) -> Option<Duration> {
    crate::pods::parse_duration(s)
}

/// Parses `<kind>[=<arg>][;after=<duration>][;for=<duration>]`, the window starting at `now`.
pub fn parse(value: &str, now: Instant) -> Result<Fault, String> {
    let mut parts = value.split(';').map(str::trim);
    let head = parts.next().unwrap_or_default();
    let (name, arg) = match head.split_once('=') {
        Some((n, a)) => (n, Some(a)),
        None => (head, None),
    };
    let kind = match (name, arg) {
        ("problem", Some(c)) if !c.is_empty() => FaultKind::Problem(c.to_string()),
        ("problem", _) => {
            return Err("problem needs a condition, e.g. problem=KernelDeadlock".into());
        }
        ("not-ready", None) => FaultKind::NotReady,
        ("partition", None) => FaultKind::Partition,
        ("flap", Some(p)) => FaultKind::Flap(
            duration(p)
                .filter(|d| !d.is_zero())
                .ok_or("flap needs a period, e.g. flap=20s")?,
        ),
        ("flap", None) => FaultKind::Flap(Duration::from_secs(20)),
        _ => {
            return Err(format!(
                "unknown fault {head:?}: use problem=<Condition>, not-ready, partition or flap[=<period>]"
            ));
        }
    };
    let mut from = now;
    let mut lasts = None;
    for part in parts.filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {part:?}"))?;
        let d = duration(v).ok_or_else(|| format!("{v:?} is not a duration"))?;
        match k {
            "after" => from = now + d,
            "for" => lasts = Some(d),
            _ => return Err(format!("unknown option {k:?}: use after= and for=")),
        }
    }
    Ok(Fault {
        kind,
        from: Some(from),
        until: lasts.map(|d| from + d),
    })
}

impl Fault {
    /// The fault in effect at `now`.
    pub fn at(&self, now: Instant) -> &FaultKind {
        let started = self.from.is_none_or(|f| now >= f);
        let ended = self.until.is_some_and(|u| now >= u);
        if started && !ended {
            &self.kind
        } else {
            &FaultKind::Healthy
        }
    }

    /// Whether the node is cut off at `now`.
    pub fn partitioned(&self, now: Instant) -> bool {
        *self.at(now) == FaultKind::Partition
    }

    /// Whether the kubelet reports Ready at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        match self.at(now) {
            FaultKind::NotReady => false,
            FaultKind::Flap(period) => {
                let since = now.saturating_duration_since(self.from.unwrap_or(now));
                (since.as_nanos() / period.as_nanos()) % 2 == 1
            }
            _ => true,
        }
    }

    /// The first instant after `now` at which [`Fault::at`] or [`Fault::ready`] may change: the
    /// window's start or end, or a flap's next edge. The status loop wakes then too, so a flap
    /// shorter than its tick is written edge by edge instead of being sampled (and aliased).
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        let window = [self.from, self.until]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min();
        let edge = match (&self.kind, self.from) {
            (FaultKind::Flap(period), Some(from)) if *self.at(now) == self.kind => {
                let edges = now.saturating_duration_since(from).as_nanos() / period.as_nanos() + 1;
                u64::try_from(period.as_nanos() * edges)
                    .ok()
                    .map(|n| from + Duration::from_nanos(n))
            }
            _ => None,
        };
        window.into_iter().chain(edge).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_with_windows() {
        let now = Instant::now();
        let f = parse("partition;after=30s;for=1m", now).unwrap();
        assert!(!f.partitioned(now));
        assert!(f.partitioned(now + Duration::from_secs(31)));
        assert!(!f.partitioned(now + Duration::from_secs(91)));
        let f = parse("problem=KernelDeadlock", now).unwrap();
        assert_eq!(f.at(now), &FaultKind::Problem("KernelDeadlock".into()));
        let f = parse("flap=10s", now).unwrap();
        assert!(
            !f.ready(now + Duration::from_secs(5)),
            "flapping starts NotReady"
        );
        assert!(f.ready(now + Duration::from_secs(15)));
        // Every edge is a change, at the period exactly, and nothing changes after the window.
        let f = parse("flap=3s;after=1s;for=7s", now).unwrap();
        let secs = |s: u64| now + Duration::from_secs(s);
        assert_eq!(f.next_change(now), Some(secs(1)));
        assert_eq!(f.next_change(secs(1)), Some(secs(4)));
        assert!(!f.ready(secs(1)) && f.ready(secs(4)) && !f.ready(secs(7)));
        assert_eq!(f.next_change(secs(4)), Some(secs(7)));
        assert_eq!(f.next_change(secs(7)), Some(secs(8)));
        assert_eq!(f.next_change(secs(8)), None);
        assert_eq!(parse("not-ready", now).unwrap().next_change(now), None);
        assert!(!parse("not-ready", now).unwrap().ready(now));
        for bad in [
            "explode",
            "problem",
            "flap=0s",
            "partition;after=soon",
            "partition;when=1s",
        ] {
            assert!(parse(bad, now).is_err(), "{bad:?}");
        }
    }
}
