//! The scrape phase (`--scrape SECONDS`): a real metrics-server scrapes every hollow node's
//! `/metrics/resource` at its usual 15 s resolution, as in a cluster with metrics-server
//! installed; the hollow side's CPU and RSS meanwhile. metrics-server dials the nodes'
//! addresses itself (no aggregation layer), verifying their certificates against the kubelet
//! serving CA.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use kubemark_core::binaries::BinaryLocator;
use kubemark_core::master::LocalControlPlane;
use kubemark_core::measurement::resource_usage::clock_ticks;

use super::super::process::{Children, RSS_SAMPLE_EVERY, totals};
use super::super::sample::ScrapePhase;

/// metrics-server's resolution in the deployments upstream ships.
const RESOLUTION: Duration = Duration::from_secs(15);

fn binary(bin_dir: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    let locator = BinaryLocator::from_env().with_bin_dir(bin_dir.cloned());
    let path = locator.cache_dir().join("metrics-server");
    anyhow::ensure!(
        path.is_file(),
        "metrics-server not found at {}; build it with scripts/build-control-plane.sh --metrics-server",
        path.display()
    );
    Ok(path)
}

/// Runs metrics-server against `cp`'s nodes for `seconds`, measuring processes `pids`.
pub async fn run(
    cp: &LocalControlPlane,
    pids: &[u32],
    n: usize,
    seconds: u64,
    bin_dir: Option<&PathBuf>,
) -> anyhow::Result<ScrapePhase> {
    let bin = binary(bin_dir)?;
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let ca = cp
        .work_dir()
        .join("pki")
        .join(kubemark_core::pki::file_names::KUBELET_SERVING_CA_CRT);
    let kubeconfig = cp.kubeconfig_path().display().to_string();
    let log = dir.path().join("metrics-server.log");
    let mut cmd = std::process::Command::new(&bin);
    cmd.args([
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", dir.path().display()),
        format!("--kubelet-certificate-authority={}", ca.display()),
        "--kubelet-preferred-address-types=InternalIP".into(),
        "--kubelet-use-node-status-port".into(),
        format!("--metric-resolution={}s", RESOLUTION.as_secs()),
    ])
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(&log)?);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let _guard = Children(vec![child]);
    let (ticks0, _) = totals(pids)?;
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(seconds);
    let mut rss = Vec::new();
    loop {
        tokio::time::sleep_until(end.min(Instant::now() + RSS_SAMPLE_EVERY).into()).await;
        rss.push(totals(pids)?.1);
        if Instant::now() >= end {
            break;
        }
    }
    let (ticks1, _) = totals(pids)?;
    let elapsed = t0.elapsed().as_secs_f64();
    let millicores = (ticks1 - ticks0) as f64 / clock_ticks() / elapsed * 1000.0;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let scrape_failures = text
        .lines()
        .filter(|l| l.contains("Failed to scrape node"))
        .count();
    Ok(ScrapePhase {
        seconds: elapsed,
        resolution_seconds: RESOLUTION.as_secs(),
        cpu_millicores_per_node: millicores / n as f64,
        rss_bytes_per_node: rss.iter().sum::<u64>() / rss.len().max(1) as u64 / n as u64,
        scrape_failures,
    })
}
