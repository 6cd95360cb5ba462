//! How a workload tells its progress: through a [`Progress`] the caller gives, so that a
//! command line draws bars and a harness logs or stays silent.

/// Where a workload reports its phases.
pub trait Progress: Send + Sync {
    /// A phase that counts up to `total` things (`what` names the count, e.g. `created`);
    /// `title` says what the phase does.
    fn counter(&self, title: &str, total: usize, what: &'static str) -> Box<dyn Step>;
    /// A phase without a count (waiting for deletions, say).
    fn spinner(&self, title: &str) -> Box<dyn Step>;
    /// A line worth telling the user (what was kept, say).
    fn note(&self, message: &str);
}

/// One phase in progress.
pub trait Step: Send + Sync {
    /// `done` things of the phase's total so far (ignored without a count), and a short state.
    fn set(&self, done: usize, message: &str);
    /// The phase ended well.
    fn finish(self: Box<Self>, message: &str);
    /// The phase failed (the error follows from the workload).
    fn abandon(self: Box<Self>);
}

/// Progress as `tracing` events: phases at `info`, updates at `debug`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logged;

struct LoggedStep;

impl Progress for Logged {
    fn counter(&self, title: &str, total: usize, what: &'static str) -> Box<dyn Step> {
        tracing::info!(total, what, "{title}");
        Box::new(LoggedStep)
    }

    fn spinner(&self, title: &str) -> Box<dyn Step> {
        tracing::info!("{title}");
        Box::new(LoggedStep)
    }

    fn note(&self, message: &str) {
        tracing::info!("{message}");
    }
}

impl Step for LoggedStep {
    fn set(&self, done: usize, message: &str) {
        tracing::debug!(done, "{message}");
    }

    fn finish(self: Box<Self>, message: &str) {
        tracing::info!("{message}");
    }

    fn abandon(self: Box<Self>) {}
}
