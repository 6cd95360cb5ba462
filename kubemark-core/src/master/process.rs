//! One supervised child process per component, logging to a file.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{MasterError, io_err};

#[derive(Debug)]
pub(crate) struct ComponentProcess {
    pub(crate) component: &'static str,
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
    binary: PathBuf,
    args: Vec<String>,
}

/// The last few lines of a log, joined on one line for error messages.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let start = text.len().saturating_sub(4096);
    let text = String::from_utf8_lossy(&text[start..]);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        "<empty log>".into()
    } else {
        tail.join(" | ")
    }
}

impl ComponentProcess {
    pub(crate) fn spawn(
        component: &'static str,
        binary: &Path,
        args: &[String],
        log: PathBuf,
    ) -> Result<Self, MasterError> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io_err(&log))?;
        let err = out.try_clone().map_err(io_err(&log))?;
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Own process group: a Ctrl-C in the user's terminal reaches us, and we stop the
            // components in order, instead of the terminal killing them half-way.
            .process_group(0)
            .spawn()
            .map_err(|source| MasterError::Spawn {
                component,
                binary: binary.to_path_buf(),
                source,
            })?;
        tracing::debug!(component, pid = child.id(), log = %log.display(), "started");
        Ok(Self {
            component,
            child,
            log,
            binary: binary.to_path_buf(),
            args: args.to_vec(),
        })
    }

    /// Starts the same command again if it has exited; true when it did.
    pub(crate) fn respawn_if_exited(&mut self) -> Result<bool, MasterError> {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            return Ok(false);
        }
        tracing::info!(component = self.component, "restarting exited component");
        *self = Self::spawn(
            self.component,
            &self.binary.clone(),
            &self.args.clone(),
            self.log.clone(),
        )?;
        Ok(true)
    }

    pub(crate) fn component(&self) -> &'static str {
        self.component
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the log's tail when the process has exited.
    pub(crate) fn check_alive(&mut self) -> Result<(), MasterError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(MasterError::Exited {
                component: self.component,
                status: status.to_string(),
                log: self.log.clone(),
                tail: log_tail(&self.log),
            }),
            Err(e) => Err(io_err(&self.log)(e)),
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; always reaps the child.
    pub(crate) async fn terminate(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(
            component = self.component,
            "did not stop after SIGTERM; killing"
        );
        self.kill_now();
    }

    /// SIGKILL and reap, synchronously (for `Drop`).
    pub(crate) fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `pid` is alive and its command line mentions `marker` (so a recycled PID is never
/// mistaken for one of ours).
pub fn pid_is_ours(pid: u32, marker: &str) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains(marker),
        Err(_) => false,
    }
}

/// Live processes whose command line mentions `marker` (a work directory every component's
/// flags name): how a crashed start's unrecorded processes are found.
pub fn pids_mentioning(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && pid_is_ours(*pid, marker))
        .collect()
}

/// Stops a process this process did not start (a detached control plane): SIGTERM, wait, SIGKILL.
pub async fn terminate_pid(pid: u32, marker: &str, grace: Duration) {
    if !pid_is_ours(pid, marker) {
        return;
    }
    let target = Pid::from_raw(pid as i32);
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        // A zombie (reaped by init soon) has an empty cmdline, so it no longer counts as ours.
        if !pid_is_ours(pid, marker) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = kill(target, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_is_ours(pid, marker) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
