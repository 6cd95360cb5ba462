//! Simulated resource usage of hollow containers, as the kubelet's resource metrics and stats
//! summary report it (metrics-server, an HPA, `kubectl top` and resource-usage collectors read
//! it).
//!
//! A container's usage comes from the pod annotation [`USAGE_ANNOTATION`] (or
//! `kubemark.io/usage.<container>` for one container), e.g. `cpu=250m,memory=64Mi`, or a ramp
//! `cpu=100m..900m/5m` (from 100m to 900m over five minutes from the container's start or the
//! annotation's change, then constant). Without it: half of the container's requests, and 1m
//! CPU / 8 MiB memory for what it does not request.

use std::time::{Duration, SystemTime};

use crate::quantity;

/// Pod annotation: every container's simulated usage.
pub const USAGE_ANNOTATION: &str = "kubemark.io/usage";

/// Default usage of a resource the container does not request: CPU in millicores.
pub const DEFAULT_CPU_MILLIS: f64 = 1.0;
/// Default usage of memory when the container does not request any: 8 MiB.
pub const DEFAULT_MEMORY_BYTES: f64 = 8.0 * 1024.0 * 1024.0;

/// A value that is constant or moves linearly from `from` to `to` over `over`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    from: f64,
    to: f64,
    over: Duration,
}

impl Level {
    /// Always `v`.
    pub fn constant(v: f64) -> Self {
        Level {
            from: v,
            to: v,
            over: Duration::ZERO,
        }
    }

    /// The value `t` after the level was set.
    pub fn at(&self, t: Duration) -> f64 {
        if self.over.is_zero() || t >= self.over {
            return self.to;
        }
        self.from + (self.to - self.from) * (t.as_secs_f64() / self.over.as_secs_f64())
    }

    /// The integral from 0 to `t` (value × seconds).
    pub fn integral(&self, t: Duration) -> f64 {
        let secs = t.as_secs_f64();
        if self.over.is_zero() {
            return self.to * secs;
        }
        let ramp = self.over.as_secs_f64().min(secs);
        let on_ramp = self.from * ramp
            + (self.to - self.from) * ramp * ramp / (2.0 * self.over.as_secs_f64());
        on_ramp + self.to * (secs - ramp).max(0.0)
    }
}

/// What one container uses: CPU in millicores, memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsageSpec {
    /// CPU, millicores.
    pub cpu_millis: Level,
    /// Memory working set, bytes.
    pub memory_bytes: Level,
}

impl UsageSpec {
    /// The default for a container with these requests (millicores, bytes).
    pub fn from_requests(cpu_millis: Option<f64>, memory_bytes: Option<f64>) -> Self {
        UsageSpec {
            cpu_millis: Level::constant(cpu_millis.map_or(DEFAULT_CPU_MILLIS, |c| c / 2.0)),
            memory_bytes: Level::constant(memory_bytes.map_or(DEFAULT_MEMORY_BYTES, |m| m / 2.0)),
        }
    }
}

/// An annotation value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {annotation} {value:?}: {reason} (expected e.g. cpu=250m,memory=64Mi or cpu=100m..900m/5m)"
)]
pub struct UsageError {
    /// The annotation's key.
    pub annotation: String,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses `cpu=Q[..Q/DURATION],memory=Q[..Q/DURATION]` over `base` (either may be left out).
pub fn parse(annotation: &str, value: &str, base: UsageSpec) -> Result<UsageSpec, UsageError> {
    let bad = |reason: String| UsageError {
        annotation: annotation.to_string(),
        value: value.to_string(),
        reason,
    };
    let mut spec = base;
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, level) = item
            .split_once('=')
            .ok_or_else(|| bad(format!("{item:?} is not key=value")))?;
        // Quantities parse to milli-units: millicores for CPU, thousandths of a byte for memory.
        let scale = match key.trim() {
            "cpu" => 1.0,
            "memory" => 1e-3,
            other => return Err(bad(format!("unknown resource {other:?} (cpu or memory)"))),
        };
        let quantity = |q: &str| {
            quantity::parse(q.trim())
                .map(|v| v as f64 * scale)
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(format!("{q:?} is not a non-negative quantity")))
        };
        let level = match level.split_once("..") {
            None => Level::constant(quantity(level)?),
            Some((from, rest)) => {
                let (to, over) = rest
                    .split_once('/')
                    .ok_or_else(|| bad(format!("ramp {level:?} needs /DURATION")))?;
                let over = super::parse_duration(over)
                    .filter(|d| *d <= Duration::from_secs(365 * 24 * 3600))
                    .ok_or_else(|| bad(format!("{over:?} is not a duration of at most a year")))?;
                Level {
                    from: quantity(from)?,
                    to: quantity(to)?,
                    over,
                }
            }
        };
        if scale == 1.0 {
            spec.cpu_millis = level;
        } else {
            spec.memory_bytes = level;
        }
    }
    Ok(spec)
}

/// A container's usage over time: the CPU it used before its spec last changed, and the spec
/// since then, so the cumulative CPU counter stays continuous when the annotation changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    spec: UsageSpec,
    since: SystemTime,
    cpu_seconds_before: f64,
}

impl Usage {
    /// Usage following `spec` from `since` (the container's start).
    pub fn new(spec: UsageSpec, since: SystemTime) -> Self {
        Usage {
            spec,
            since,
            cpu_seconds_before: 0.0,
        }
    }

    /// Follows `spec` from `now` on (a no-op when it is the same).
    pub fn change(&mut self, spec: UsageSpec, now: SystemTime) {
        if spec == self.spec {
            return;
        }
        self.cpu_seconds_before = self.cpu_seconds(now);
        self.spec = spec;
        self.since = now;
    }

    /// The spec followed now.
    pub fn spec(&self) -> UsageSpec {
        self.spec
    }

    fn elapsed(&self, now: SystemTime) -> Duration {
        now.duration_since(self.since).unwrap_or_default()
    }

    /// Cumulative CPU time used up to `now`, seconds.
    pub fn cpu_seconds(&self, now: SystemTime) -> f64 {
        self.cpu_seconds_before + self.spec.cpu_millis.integral(self.elapsed(now)) / 1000.0
    }

    /// CPU in use at `now`, nanocores.
    pub fn nano_cores(&self, now: SystemTime) -> f64 {
        self.spec.cpu_millis.at(self.elapsed(now)) * 1e6
    }

    /// Memory working set at `now`, bytes.
    pub fn memory_bytes(&self, now: SystemTime) -> f64 {
        self.spec.memory_bytes.at(self.elapsed(now))
    }
}

/// What the node itself uses besides its containers (the kubelet, the runtime, the system).
pub const NODE_BASE: UsageSpec = UsageSpec {
    cpu_millis: Level {
        from: 50.0,
        to: 50.0,
        over: Duration::ZERO,
    },
    memory_bytes: Level {
        from: 256.0 * 1024.0 * 1024.0,
        to: 256.0 * 1024.0 * 1024.0,
        over: Duration::ZERO,
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> UsageSpec {
        UsageSpec::from_requests(Some(200.0), Some(128.0 * 1024.0 * 1024.0))
    }

    #[test]
    fn the_default_is_half_the_requests_and_a_floor_without_them() {
        let s = base();
        assert_eq!(s.cpu_millis.at(Duration::ZERO), 100.0);
        assert_eq!(s.memory_bytes.at(Duration::ZERO), 64.0 * 1024.0 * 1024.0);
        let none = UsageSpec::from_requests(None, None);
        assert_eq!(none.cpu_millis.at(Duration::ZERO), DEFAULT_CPU_MILLIS);
        assert_eq!(none.memory_bytes.at(Duration::ZERO), DEFAULT_MEMORY_BYTES);
    }

    #[test]
    fn constants_and_ramps_parse_and_integrate() {
        let s = parse("a", "cpu=250m, memory=64Mi", base()).unwrap();
        assert_eq!(s.cpu_millis.at(Duration::from_secs(9)), 250.0);
        assert_eq!(s.memory_bytes.at(Duration::ZERO), 64.0 * 1024.0 * 1024.0);
        let r = parse("a", "cpu=100m..900m/100s", base()).unwrap();
        assert_eq!(r.cpu_millis.at(Duration::from_secs(50)), 500.0);
        assert_eq!(r.cpu_millis.at(Duration::from_secs(500)), 900.0);
        // 100 s averaging 500m, then 100 s at 900m.
        let i = r.cpu_millis.integral(Duration::from_secs(200));
        assert!((i - (50_000.0 + 90_000.0)).abs() < 1e-6, "{i}");
        // Memory left as it was.
        assert_eq!(r.memory_bytes, base().memory_bytes);
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        for v in [
            "cpu",
            "gpu=1",
            "cpu=lots",
            "cpu=-1",
            "cpu=1..2",
            "cpu=1..2/forever",
            "memory=1..2/9999999h",
        ] {
            let e = parse("kubemark.io/usage", v, base()).unwrap_err();
            assert!(e.to_string().contains("kubemark.io/usage"), "{e}");
        }
    }

    #[test]
    fn the_cpu_counter_stays_continuous_across_a_change() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut u = Usage::new(parse("a", "cpu=100m", base()).unwrap(), t0);
        let t1 = t0 + Duration::from_secs(10);
        assert!((u.cpu_seconds(t1) - 1.0).abs() < 1e-9);
        u.change(parse("a", "cpu=2", base()).unwrap(), t1);
        assert!((u.cpu_seconds(t1) - 1.0).abs() < 1e-9);
        assert!((u.cpu_seconds(t1 + Duration::from_secs(5)) - 11.0).abs() < 1e-9);
        assert_eq!(u.nano_cores(t1), 2e9);
    }
}
