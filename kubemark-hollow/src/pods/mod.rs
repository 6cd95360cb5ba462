//! The pod as a hollow kubelet models it: what it requests and is admitted against, its
//! containers' commands and statuses, its IP, its usage and the record its kubelet API serves.
//! The loop that runs pods is `pod_worker`'s.

pub mod admission;
pub mod command;
pub mod ipam;
pub mod record;
pub mod status;
pub mod usage;

use std::time::Duration;

/// Annotation: how long the pod's containers run before they exit (e.g. `30s`, `5m`). Lets Jobs
/// complete. Without it, containers run until the pod is deleted.
pub const RUN_DURATION_ANNOTATION: &str = "kubemark.io/run-duration";
/// Annotation: the exit code containers exit with after the run duration (default 0). With
/// `restartPolicy: Always` (or `OnFailure` and a non-zero code) they restart with the kubelet's
/// back-off, showing `CrashLoopBackOff`.
pub const EXIT_CODE_ANNOTATION: &str = "kubemark.io/exit-code";

/// The longest duration [`parse_duration`] takes (about 31 years): longer is a typo, and
/// timers past it would overflow.
const MAX_DURATION_SECS: f64 = 1e9;

/// Parses `500ms`, `30s`, `2m`, `1h` (a bare number is seconds), at most ~31 years.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    if !(0.0..=MAX_DURATION_SECS).contains(&secs) {
        return None;
    }
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("99999999999999999999999999h"), None);
        assert_eq!(parse_duration("-5s"), None);
    }
}
