//! What a bench prints (the tables, the comparisons with ours, upstream's request mix beside
//! ours) and writes (`--json`, the `HollowBenchmark` document of docs/bench/*.json).

use std::collections::BTreeMap;
use std::path::Path;

use super::sample::PodPhase;
use super::sample::Sample;
use crate::cli::BenchArgs;

/// Prints the tables and comparisons of `samples` on stdout.
pub fn print(samples: &[Sample]) {
    println!(
        "{:<12} {:>7} {:>14} {:>14} {:>13} {:>16} {:>15} {:>16} {:>8} {:>13} {:>13}",
        "",
        "nodes",
        "ready after s",
        "RSS/node KiB",
        "(min-max)",
        "CPU/node mcore",
        "CPU total mcore",
        "apiserver/node",
        "sockets",
        "lease gap s",
        "missed/late"
    );
    for s in samples {
        println!(
            "{:<12} {:>7} {:>14.1} {:>14} {:>13} {:>16.3} {:>15.1} {:>16.3} {:>8} {:>13.1} {:>13}",
            s.implementation,
            s.nodes,
            s.seconds_to_ready,
            s.rss_bytes_per_node / 1024,
            format!(
                "{}-{}",
                s.rss_bytes_min / s.nodes as u64 / 1024,
                s.rss_bytes_max / s.nodes as u64 / 1024
            ),
            s.cpu_millicores_per_node,
            s.cpu_millicores_total,
            s.apiserver_millicores_per_node,
            s.sockets,
            s.lease_max_gap_seconds,
            format!("{}/{}", s.leases_missed, s.leases_late)
        );
    }
    println!(
        "\nlease renewals while idle (steps of each node Lease's renewTime; the kubelet's interval is 10-10.4 s):"
    );
    for s in samples {
        let d = &s.lease_renew_steps;
        println!(
            "  {:<12} {:>7} nodes: {:>7} renewals, {d}",
            s.implementation, s.nodes, d.count
        );
    }
    for off in samples.iter().filter(|s| s.implementation == "ours-noapi") {
        if let Some(on) = ours_at(samples, off.nodes) {
            println!(
                "{} nodes: the kubelet API costs {:+.1} KiB RSS and {:+.4} mcore CPU per idle node (ours with it minus ours without)",
                off.nodes,
                (on.rss_bytes_per_node as f64 - off.rss_bytes_per_node as f64) / 1024.0,
                on.cpu_millicores_per_node - off.cpu_millicores_per_node
            );
        }
    }
    for s in samples {
        if let Some(p) = &s.scrape {
            println!(
                "{} nodes, metrics-server scraping every {} s for {:.0} s: hollow CPU {:.3} mcore/node (idle {:.3}), RSS {} KiB/node (idle {}), {} failed scrapes",
                s.nodes,
                p.resolution_seconds,
                p.seconds,
                p.cpu_millicores_per_node,
                s.cpu_millicores_per_node,
                p.rss_bytes_per_node / 1024,
                s.rss_bytes_per_node / 1024,
                p.scrape_failures
            );
        }
        if let Some(e) = &s.scrape_error {
            println!("{} nodes: the scrape phase failed: {e}", s.nodes);
        }
    }
    for stock in samples
        .iter()
        .filter(|s| s.implementation == "ours-stockconn")
    {
        if let Some(own) = ours_at(samples, stock.nodes) {
            println!(
                "{} nodes: our connection saves {:.1} KiB RSS and {:+.4} mcore CPU per idle node against tokio-rustls + h2 defaults",
                stock.nodes,
                (stock.rss_bytes_per_node as f64 - own.rss_bytes_per_node as f64) / 1024.0,
                stock.cpu_millicores_per_node - own.cpu_millicores_per_node
            );
        }
    }
    for peer in samples
        .iter()
        .filter(|s| !s.implementation.starts_with("ours-") && s.implementation != "kubemark-rs")
    {
        if let Some(ours) = ours_at(samples, peer.nodes) {
            println!(
                "{} nodes: {} / ours = {:.1}x memory per node, {:.1}x CPU per node, {:.2}x API server CPU per node, {:.1}x time to Ready",
                peer.nodes,
                peer.implementation,
                peer.rss_bytes_per_node as f64 / ours.rss_bytes_per_node.max(1) as f64,
                peer.cpu_millicores_per_node / ours.cpu_millicores_per_node.max(1e-9),
                peer.apiserver_millicores_per_node / ours.apiserver_millicores_per_node.max(1e-9),
                peer.seconds_to_ready / ours.seconds_to_ready.max(1e-9)
            );
        }
    }
    for s in samples {
        println!(
            "\nAPI requests per node-minute while idle ({} {} nodes, from {:.0} s after Ready), all clients of the API server:",
            s.nodes, s.implementation, s.settle_seconds
        );
        let mut top: Vec<(&String, &f64)> = s.requests_per_node_minute.iter().collect();
        top.sort_by(|a, b| b.1.total_cmp(a.1));
        for (k, v) in top.into_iter().take(10) {
            println!("  {k:<40} {v:>8.3}");
        }
        let mut levels: Vec<(&String, &f64)> =
            s.requests_per_node_minute_by_priority.iter().collect();
        levels.sort_by(|a, b| b.1.total_cmp(a.1));
        let levels: Vec<String> = levels
            .into_iter()
            .take(5)
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        println!("by API priority level (flow schema): {}", levels.join(", "));
        let w: Vec<String> = s.watches.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("open watches on the API server: {}", w.join(" "));
    }
    if samples
        .iter()
        .any(|s| s.pods.is_some() || s.pods_error.is_some())
    {
        println!(
            "\n{:<12} {:>7} {:>7} {:>14} {:>14} {:>14} {:>14} {:>14}",
            "",
            "nodes",
            "pods",
            "created after s",
            "running after s",
            "deleted after s",
            "hollow CPU %",
            "machine CPU %"
        );
        for s in samples {
            if let Some(p) = &s.pods {
                println!(
                    "{:<12} {:>7} {:>7} {:>14.1} {:>14.1} {:>14.1} {:>14.1} {:>14.1}",
                    s.implementation,
                    s.nodes,
                    p.pods,
                    p.seconds_to_created,
                    p.seconds_to_running,
                    p.seconds_to_deleted,
                    p.hollow_cpu_percent,
                    p.machine_cpu_percent
                );
            }
            if let Some(e) = &s.pods_error {
                println!("{:<12} {:>7} failed: {e}", s.implementation, s.nodes);
            }
        }
        println!("node Leases during the pod phase (worst round):");
        for s in samples {
            if let Some(p) = &s.pods {
                println!(
                    "  {:<12} {:>7} nodes: missed/late {}/{}, longest gap {:.1} s, renewal steps {}; nodes lost Ready: {}",
                    s.implementation,
                    s.nodes,
                    p.leases_missed,
                    p.leases_late,
                    p.lease_max_gap_seconds,
                    p.lease_renew_steps,
                    p.nodes_lost_ready
                );
            }
        }
    }
    for up in samples.iter().filter(|s| s.implementation == "upstream") {
        let Some(ours) = ours_at(samples, up.nodes) else {
            continue;
        };
        fidelity(
            &format!("idle, {} nodes", up.nodes),
            "per node-minute",
            (&up.requests_per_node_minute, &[]),
            (&ours.requests_per_node_minute, &[]),
        );
        if let (Some(u), Some(o)) = (&up.pods, &ours.pods) {
            fn per_round(p: &PodPhase) -> Vec<&BTreeMap<String, f64>> {
                p.rounds.iter().map(|r| &r.requests_per_pod).collect()
            }
            let rounds = match u.rounds.len() {
                0 => String::new(),
                n => format!(", means of {n} rounds"),
            };
            fidelity(
                &format!(
                    "{} pre-bound pods created and deleted, {} nodes{rounds}",
                    u.pods, up.nodes
                ),
                "per pod (above the idle rate)",
                (&u.requests_per_pod, &per_round(u)),
                (&o.requests_per_pod, &per_round(o)),
            );
            failures_side_by_side(&u.failed_per_pod, &o.failed_per_pod);
        }
    }
}

/// Writes the JSON document to `path`.
pub fn write_json(
    path: &Path,
    args: &BenchArgs,
    samples: &[Sample],
    failures: &[String],
) -> anyhow::Result<()> {
    std::fs::write(
        path,
        serde_json::to_string_pretty(&serde_json::json!({
            "apiVersion": "kubemark.io/v1alpha1",
            "kind": "HollowBenchmark",
            "kubernetesVersion": kubemark_core::binaries::KUBERNETES_VERSION,
            "kubeApiQps": args.kube_api_qps,
            "kubeApiBurst": args.kube_api_burst,
            "samples": samples,
            "failures": failures,
        }))?,
    )?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Warns on stderr about what makes numbers less telling, and adds failed pod phases to
/// `failures`.
pub fn warnings(samples: &[Sample], failures: &mut Vec<String>) {
    for s in samples {
        if s.leases_late > 0 {
            eprintln!(
                "note: {}, {} nodes: {} leases late (a gap over 15 s) as the bench's watch saw them, {} by their own renewTime (longest step {:.1} s); late in the watch only means the events reached it late, not that the node renewed late",
                s.implementation,
                s.nodes,
                s.leases_late,
                s.leases_late_by_renew_time,
                s.lease_max_renew_step_seconds
            );
        }
        if s.control_plane_restarts > 0 {
            eprintln!(
                "warning: {}, {} nodes: control-plane components had exited (the machine too busy for their leader lease?) and were restarted: {}; the numbers after include their start-up",
                s.implementation,
                s.nodes,
                s.control_plane_restarted.join(", ")
            );
        }
        if let Some(e) = &s.pods_error {
            failures.push(format!(
                "{}, {} nodes, pod phase: {e}",
                s.implementation, s.nodes
            ));
        }
    }
}

/// Our default build's sample at `nodes`, the one every other sample is compared with.
fn ours_at(samples: &[Sample], nodes: usize) -> Option<&Sample> {
    samples
        .iter()
        .find(|s| s.implementation == "kubemark-rs" && s.nodes == nodes)
}

/// Upstream's ten busiest (verb, resource) pairs next to ours: the fidelity target is within
/// ±15 % of upstream and never above it (above by less than 0.5 % counts as equal: rounding of a
/// rate over slightly different windows). With several rounds the means are compared and each
/// side's range over its rounds is shown.
fn fidelity(
    title: &str,
    unit: &str,
    upstream: (&BTreeMap<String, f64>, &[&BTreeMap<String, f64>]),
    ours: (&BTreeMap<String, f64>, &[&BTreeMap<String, f64>]),
) {
    println!("\n{title}: upstream's top ten requests {unit}, ours beside them");
    let range = |rounds: &[&BTreeMap<String, f64>], k: &str| {
        let v: Vec<f64> = rounds
            .iter()
            .map(|r| r.get(k).copied().unwrap_or(0.0))
            .collect();
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        if v.len() > 1 {
            format!(" [{lo:.2}-{hi:.2}]")
        } else {
            String::new()
        }
    };
    let mut top: Vec<(&String, &f64)> = upstream.0.iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(a.1));
    for (k, up) in top.into_iter().take(10) {
        let o = ours.0.get(k).copied().unwrap_or(0.0);
        let ratio = o / up.max(1e-9);
        let verdict = if (0.85..=1.005).contains(&ratio) {
            "ok"
        } else if ratio > 1.0 {
            "above"
        } else {
            "below"
        };
        let (ur, or) = (range(upstream.1, k), range(ours.1, k));
        println!("  {k:<40} upstream {up:>9.3}{ur}  ours {o:>9.3}{or}  {ratio:>6.2}x  {verdict}");
    }
}

/// Failed requests per pod by code, both sides, where either had at least one per 200 pods.
/// They are part of the counts above; shown apart because a failure and its retry both count
/// there.
fn failures_side_by_side(upstream: &BTreeMap<String, f64>, ours: &BTreeMap<String, f64>) {
    let keys: std::collections::BTreeSet<&String> = upstream
        .iter()
        .chain(ours)
        .filter(|(_, v)| **v >= 0.005)
        .map(|(k, _)| k)
        .collect();
    println!("  failed requests per pod, by code (included above):");
    if keys.is_empty() {
        println!("    none on either side");
    }
    for k in keys {
        let get = |m: &BTreeMap<String, f64>| m.get(k).copied().unwrap_or(0.0);
        println!(
            "    {k:<38} upstream {:>9.3}  ours {:>9.3}",
            get(upstream),
            get(ours)
        );
    }
}
