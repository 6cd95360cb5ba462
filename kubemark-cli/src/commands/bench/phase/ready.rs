//! The ready phase of simulators whose nodes the bench does not start one by one: waiting until
//! every node of a name prefix is Ready. (Ours waits through `nodes::wait_ready`, which also
//! watches its process.)

use std::time::{Duration, Instant};

use crate::commands::nodes::ReadyWatch;

/// Waits until `n` nodes named `prefix...` are Ready as `watch` sees them; after `timeout`,
/// fails naming how many of the `what` were.
pub async fn wait_prefix(
    watch: &ReadyWatch,
    prefix: &str,
    n: usize,
    timeout: Duration,
    what: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let ready = watch.count_with_prefix(prefix);
        if ready == n {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "only {ready}/{n} {what} Ready");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
