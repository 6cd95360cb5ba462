//! `kubemark test`: scalability tests against any kubemark cluster or kubeconfig, with
//! CL2-style measurements, SLO verdicts and a JSON artifact per run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use kubemark_core::measurement::slo::SloThresholds;
use kubemark_core::measurement::{Target, dashboard};
use kubemark_core::workload::{self, Step, TestOptions, density, load};

use crate::cli::test::{CommonArgs, TestArgs, TestKind};

impl CommonArgs {
    fn options(&self) -> TestOptions {
        TestOptions {
            pods_per_node: self.pods_per_node,
            qps: self.qps,
            timeout: Duration::from_secs(self.timeout),
            delete_namespace: self.delete_namespace,
            slo: SloThresholds {
                pod_startup_seconds: self.pod_startup_threshold,
                single_object_seconds: self.single_object_threshold,
                list_seconds: self.list_threshold,
            },
        }
    }
}

/// The cluster to test, from `--kubeconfig` or the kubemark cluster's state: the processes to
/// sample and the master to scrape or reach over SSH, where this machine knows them.
async fn target(args: &CommonArgs) -> anyhow::Result<Target> {
    if let Some(path) = &args.kubeconfig {
        let client = kubemark_core::master::client_from_kubeconfig(path).await?;
        return Ok(Target::new(client));
    }
    let dir = crate::state::cluster_dir(&args.cluster)?;
    let Some(known) = crate::state::load(&dir)? else {
        bail!(
            "no kubemark cluster {} (state dir {}); start one with `kubemark start` or pass --kubeconfig",
            args.cluster.cluster,
            dir.display()
        );
    };
    let client = known.client().await?;
    let local = known.local().cloned();
    let mut processes: Vec<(String, u32)> =
        local.iter().flat_map(|l| l.processes.clone()).collect();
    if let Some(kubemark_core::cluster::NodePlacement::LocalProcess(h)) = known.nodes() {
        processes.push(("hollow-nodes".to_string(), h.pid));
    }
    let mut target = Target::new(client).with_processes(processes);
    if let Some(local) = local {
        target = target.with_local_master(local);
    }
    if let kubemark_core::cluster::MasterState::Ssh {
        target: ssh, spec, ..
    } = &known.state().master
    {
        target = target.with_remote_master(ssh.clone(), spec.clone());
    }
    Ok(target)
}

/// Progress on a terminal: bars and spinners; plain lines otherwise.
struct Terminal;

impl workload::Progress for Terminal {
    fn counter(&self, title: &str, total: usize, what: &'static str) -> Box<dyn Step> {
        Box::new(Counter::new(title, total, what))
    }

    fn spinner(&self, title: &str) -> Box<dyn Step> {
        Box::new(crate::progress::Spinner::start(title))
    }

    fn note(&self, message: &str) {
        eprintln!("{message}");
    }
}

impl Step for crate::progress::Spinner {
    fn set(&self, _done: usize, _message: &str) {}

    fn finish(self: Box<Self>, message: &str) {
        crate::progress::Spinner::finish(*self, message);
    }

    fn abandon(self: Box<Self>) {
        crate::progress::Spinner::abandon(*self);
    }
}

/// A counted phase: a bar on a terminal, a line every 10 s otherwise.
struct Counter {
    bar: Option<ProgressBar>,
    total: usize,
    what: &'static str,
    last: std::sync::Mutex<std::time::Instant>,
    start: std::time::Instant,
}

impl Counter {
    /// `what` names the counted thing ("created", "Running").
    fn new(title: &str, total: usize, what: &'static str) -> Self {
        eprintln!("{title}");
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner:.cyan}} {what} {{pos}}/{{len}} {{msg}} [{{bar:30.cyan/blue}}] [{{elapsed}}]"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let now = std::time::Instant::now();
        Self {
            bar,
            total,
            what,
            last: std::sync::Mutex::new(now),
            start: now,
        }
    }
}

impl Step for Counter {
    fn set(&self, done: usize, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            bar.set_message(message.to_string());
            return;
        }
        let mut last = self.last.lock().expect("not poisoned");
        if last.elapsed().as_secs() >= 10 {
            eprintln!(
                "{} {done}/{} {message} after {}s",
                self.what,
                self.total,
                self.start.elapsed().as_secs()
            );
            *last = std::time::Instant::now();
        }
    }

    fn finish(self: Box<Self>, message: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!("{message}");
    }

    fn abandon(self: Box<Self>) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}

/// Runs `kubemark test ...`: prints the summary, writes the artifact, fails when an SLO fails.
pub async fn run(args: TestArgs) -> anyhow::Result<()> {
    let (name, common) = match &args.test {
        TestKind::Density(a) => ("density", a.common.clone()),
        TestKind::Load(a) => ("load", a.common.clone()),
        TestKind::Report(r) => {
            dashboard::write(&r.reports, &r.html)?;
            println!("dashboard: {}", r.html.display());
            return Ok(());
        }
    };
    // The library refuses these too; here they are named by their flags.
    if !(common.qps.is_finite() && common.qps > 0.0) {
        bail!("--qps must be a positive number of pods per second");
    }
    if common.pods_per_node == 0 {
        bail!("--pods-per-node must be at least 1");
    }
    let target = target(&common).await?;
    let report_path = common.report.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        PathBuf::from(format!("kubemark-{name}-{now}.json"))
    });
    let client = target.client().clone();
    let options = common.options();
    let test = async {
        match args.test {
            TestKind::Density(_) => density::run(&target, &options, &Terminal).await,
            TestKind::Load(a) => {
                let focus: Vec<load::Part> = a.focus.into_iter().map(Into::into).collect();
                load::run(&target, &options, &focus, &Terminal).await
            }
            TestKind::Report(_) => unreachable!("handled above"),
        }
    };
    let run = tokio::select! {
        r = test => r?,
        // The run is dropped (its requests stop); what it created goes unless kept on purpose.
        _ = crate::signals::interrupted() => {
            let namespaces = workload::run_namespaces(&client).await?;
            if common.delete_namespace && !namespaces.is_empty() {
                eprintln!("interrupted; deleting {}", namespaces.join(", "));
                workload::delete_namespaces(&client, &namespaces, Duration::from_secs(common.timeout), &Terminal).await?;
                bail!("{name} interrupted; its namespaces were deleted");
            }
            bail!("{name} interrupted; left as they were: {}", namespaces.join(", "));
        }
    };
    std::fs::write(&report_path, serde_json::to_string_pretty(&run)?)?;
    let html = report_path.with_extension("html");
    std::fs::write(&html, dashboard::render(std::slice::from_ref(&run))?)?;
    println!(
        "{name}: {} pods on {} nodes in {:.1}s; pod start-up p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms; scheduling {:.0} pods/s max",
        run.pods_measured,
        run.nodes,
        run.duration_seconds,
        run.pod_startup_ms.p50,
        run.pod_startup_ms.p90,
        run.pod_startup_ms.p99,
        run.scheduling_throughput.max
    );
    for o in &run.objects {
        println!(
            "  {:<24} created {:>6} deleted {:>6}",
            o.kind, o.created, o.deleted
        );
    }
    for p in &run.phases {
        println!("  phase {:<18} {:>8.1}s", p.name, p.seconds);
    }
    if let Some(e) = &run.etcd {
        println!(
            "  etcd db {:.1} MiB; slowest request p99 {}",
            e.db_size_bytes / (1024.0 * 1024.0),
            e.requests
                .first()
                .map(|r| format!(
                    "{:.0} ms ({} {})",
                    r.p99_seconds * 1000.0,
                    r.operation,
                    r.resource
                ))
                .unwrap_or_else(|| "-".into())
        );
    }
    for c in &run.components {
        println!(
            "  {:<24} CPU p50 {:>7.1} mcore p99 {:>7.1}   RSS max {:>7.1} MiB",
            c.name, c.cpu_millicores.p50, c.cpu_millicores.p99, c.rss_mib.max
        );
    }
    println!(
        "report: {} (dashboard: {})",
        report_path.display(),
        html.display()
    );
    let failed: Vec<String> = run
        .verdicts
        .iter()
        .filter(|v| !v.pass)
        .map(|v| {
            format!(
                "{} = {:.3} {} > {} {}",
                v.measurement, v.value, v.unit, v.threshold, v.unit
            )
        })
        .collect();
    if !failed.is_empty() {
        bail!("SLO failed: {}", failed.join("; "));
    }
    println!("all {} SLO checks passed", run.verdicts.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    #[test]
    fn every_load_part_has_a_flag_value() {
        let parts: Vec<kubemark_core::workload::load::Part> =
            crate::cli::test::Part::value_variants()
                .iter()
                .map(|p| (*p).into())
                .collect();
        assert_eq!(parts, kubemark_core::workload::load::Part::ALL);
    }

    #[test]
    fn the_load_tests_jobs_use_the_annotation_the_hollow_node_reads() {
        assert_eq!(
            kubemark_core::workload::load::RUN_DURATION_ANNOTATION,
            kubemark_hollow::pods::RUN_DURATION_ANNOTATION
        );
    }
}
