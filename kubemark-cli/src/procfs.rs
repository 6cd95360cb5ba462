//! Reading a process's CPU time and memory from `/proc`, for `bench` and for the component
//! sampler of test runs.

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
