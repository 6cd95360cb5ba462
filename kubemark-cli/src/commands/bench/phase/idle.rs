//! The idle phase: after the settle phase, the hollow side's CPU and RSS, the API server's CPU,
//! the request mix and the open watches over `--idle` seconds; then the pod phase, if asked.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kubemark_core::master::LocalControlPlane;
use kubemark_core::measurement::resource_usage::clock_ticks;

use super::super::apiserver::{
    dispatched_by_priority, metrics, request_counts, request_deltas, watches,
};
use super::super::leases::LeaseGaps;
use super::super::process::{RSS_SAMPLE_EVERY, sockets, totals};
use super::super::sample::PodPhase;
use super::super::sample::Sample;
use super::pods;
use super::settle;
use crate::cli::BenchArgs;

/// The idle phase: settle, then CPU, RSS, request mix and watches over `args.idle` seconds.
pub async fn run(
    implementation: &'static str,
    n: usize,
    pids: &[u32],
    seconds_to_ready: f64,
    cp: &mut LocalControlPlane,
    args: &BenchArgs,
) -> anyhow::Result<Sample> {
    // The controller-manager and scheduler exit when they lose their leader lease, which a
    // saturated machine can make them do (100 upstream processes starting at once did): a real
    // master's supervisor restarts them, and so does the bench, before it measures, and says so.
    let mut restarted = cp.supervise()?;
    let client = cp.client().await?;
    let (settle_seconds, text_before) = settle::settle(&client, n).await?;
    let before = request_counts(&text_before);
    let apiserver: Vec<u32> = cp
        .pids()
        .into_iter()
        .filter(|(component, _)| component == "kube-apiserver")
        .map(|(_, pid)| pid)
        .collect();
    let (apiserver0, _) = totals(&apiserver)?;
    let (ticks0, _) = totals(pids)?;
    let gaps = LeaseGaps::start(client.clone());
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(args.idle);
    let mut rss_samples = Vec::new();
    loop {
        tokio::time::sleep_until(end.min(Instant::now() + RSS_SAMPLE_EVERY).into()).await;
        rss_samples.push(totals(pids)?.1);
        if Instant::now() >= end {
            break;
        }
    }
    let lease_gaps = gaps.finish();
    let (ticks1, _) = totals(pids)?;
    let (apiserver1, _) = totals(&apiserver)?;
    let elapsed = t0.elapsed().as_secs_f64();
    let rss = rss_samples.iter().sum::<u64>() / rss_samples.len() as u64;
    let text = metrics(&client).await?;
    let after = request_counts(&text);
    let millicores = |ticks: u64| ticks as f64 / clock_ticks() / elapsed * 1000.0;
    let cpu_total = millicores(ticks1 - ticks0);
    let apiserver_total = millicores(apiserver1 - apiserver0);
    let node_minutes = n as f64 * elapsed / 60.0;
    let per_node_minute = |before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>| {
        request_deltas(before, after)
            .into_iter()
            .map(|(k, delta)| (k, delta / node_minutes))
            .collect::<BTreeMap<String, f64>>()
    };
    let requests_per_node_minute = per_node_minute(&before, &after);
    let requests_per_node_minute_by_priority = per_node_minute(
        &dispatched_by_priority(&text_before),
        &dispatched_by_priority(&text),
    );
    let (pods, pods_error) = if args.pods > 0 {
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
        let names: Vec<String> = nodes
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        let timeout = Duration::from_secs(args.timeout);
        let mut rounds = Vec::new();
        let mut failed = None;
        for round in 1..=args.pod_rounds {
            if args.pod_rounds > 1 {
                eprintln!("pod round {round} of {}", args.pod_rounds);
            }
            restarted.extend(cp.supervise()?);
            let idle = &requests_per_node_minute;
            let kubeconfig = cp.kubeconfig_path().to_path_buf();
            match pods::run(
                &client,
                &kubeconfig,
                round,
                &names,
                args.pods,
                pids,
                timeout,
                idle,
            )
            .await
            {
                Ok(p) => rounds.push(p),
                Err(e) => {
                    failed = Some(format!("round {round}: {e:#}"));
                    break;
                }
            }
        }
        match failed {
            None => (PodPhase::mean(rounds), None),
            Some(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    Ok(Sample {
        implementation,
        processes: pids.len(),
        nodes: n,
        seconds_to_ready,
        settle_seconds,
        idle_seconds: args.idle,
        rss_bytes: rss,
        rss_bytes_per_node: rss / n as u64,
        rss_bytes_min: rss_samples.iter().copied().min().unwrap_or_default(),
        rss_bytes_max: rss_samples.iter().copied().max().unwrap_or_default(),
        rss_samples: rss_samples.len(),
        cpu_millicores_total: cpu_total,
        cpu_millicores_per_node: cpu_total / n as f64,
        apiserver_millicores_per_node: apiserver_total / n as f64,
        requests_per_node_minute,
        requests_per_node_minute_by_priority,
        watches: watches(&text),
        sockets: pids.iter().map(|p| sockets(*p)).sum(),
        lease_max_gap_seconds: lease_gaps.max_gap,
        leases_missed: lease_gaps.missed,
        leases_late: lease_gaps.late,
        lease_max_renew_step_seconds: lease_gaps.max_renew_step,
        leases_late_by_renew_time: lease_gaps.late_by_renew_time,
        lease_renew_steps: lease_gaps.renew_steps,
        pods,
        pods_error,
        scrape: None,
        scrape_error: None,
        control_plane_restarts: restarted.len(),
        control_plane_restarted: restarted,
    })
}
