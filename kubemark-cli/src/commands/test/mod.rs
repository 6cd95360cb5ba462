//! `kubemark test`: scalability tests against any kubemark cluster or kubeconfig, with
//! CL2-style measurements, SLO verdicts and a JSON artifact per run.

pub mod dashboard;
mod density;
mod etcd;
mod load;
mod measure;
pub mod metrics;
mod report;
mod usage;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{ArgAction, Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::state::ClusterArgs;

/// Flags of `kubemark test`.
#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// Which test.
    #[command(subcommand)]
    pub test: TestKind,
}

/// The tests.
#[derive(Debug, Clone, Subcommand)]
pub enum TestKind {
    /// Saturate every node with pods at a fixed create rate and measure start-up latency.
    Density(DensityArgs),
    /// Deployments (big/medium/small), Services, ConfigMaps, Secrets, a DaemonSet, Jobs and
    /// StatefulSets: created, scaled up and down, deleted.
    Load(LoadArgs),
    /// Render run reports (JSON) into one static HTML dashboard that compares them side by side.
    Report(ReportArgs),
}

/// Flags of `kubemark test report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Run reports written by `kubemark test density` or `kubemark test load`.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(long, default_value = "kubemark-dashboard.html")]
    pub html: PathBuf,
}

/// Flags every test takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// The kubemark cluster to test (ignored with --kubeconfig).
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Test any cluster by kubeconfig instead of a kubemark cluster.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Pods per Ready node.
    #[arg(long, default_value_t = 30)]
    pub pods_per_node: usize,
    /// Pod create rate, pods/s (the load test paces every object by the pods it makes).
    #[arg(long, default_value_t = 20.0)]
    pub qps: f64,
    /// Seconds to wait for each phase (pods Running, objects gone, namespaces deleted).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Delete what the test created afterwards (`--delete-namespace=false` keeps it all).
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    pub delete_namespace: bool,
    /// Pod start-up SLO (p50, p90 and p99), seconds.
    #[arg(long, default_value_t = 5.0)]
    pub pod_startup_threshold: f64,
    /// API call SLO for single-object calls (p99), seconds.
    #[arg(long, default_value_t = 1.0)]
    pub single_object_threshold: f64,
    /// API call SLO for LIST calls (p99), seconds.
    #[arg(long, default_value_t = 30.0)]
    pub list_threshold: f64,
    /// Where to write the JSON artifact (default: kubemark-<test>-<unix time>.json).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Flags of `kubemark test density`.
#[derive(Debug, Clone, Args)]
pub struct DensityArgs {
    /// Flags every test takes.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Flags of `kubemark test load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Flags every test takes.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only these parts, comma-separated: deployments, services, configmaps, secrets,
    /// daemonsets, jobs, statefulsets (object kinds) and scale (the scale phase). Default: all.
    #[arg(long, value_delimiter = ',')]
    pub focus: Vec<load::Part>,
}

/// What a test runs against.
pub struct Target {
    client: kube::Client,
    /// Local processes to sample (name, pid), when the cluster runs on this machine.
    processes: Option<Vec<(String, u32)>>,
    /// The local master's state, for scraping etcd directly.
    local: Option<kubemark_core::master::LocalState>,
    /// A remote master, sampled over SSH.
    remote: Option<(
        kubemark_core::bootstrap::SshTarget,
        kubemark_core::master::RemoteMasterSpec,
    )>,
}

async fn target(args: &CommonArgs) -> anyhow::Result<Target> {
    if let Some(path) = &args.kubeconfig {
        let client = kubemark_core::master::client_from_kubeconfig(path).await?;
        return Ok(Target {
            client,
            processes: None,
            local: None,
            remote: None,
        });
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
    let remote = match &known.state().master {
        kubemark_core::cluster::MasterState::Ssh { target, spec, .. } => {
            Some((target.clone(), spec.clone()))
        }
        _ => None,
    };
    Ok(Target {
        client,
        processes: (!processes.is_empty()).then_some(processes),
        local,
        remote,
    })
}

/// Progress on a terminal, a line every 10 s otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    what: &'static str,
    last: std::sync::Mutex<std::time::Instant>,
    start: std::time::Instant,
}

impl Progress {
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

    fn finish(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!("{message}");
    }

    fn abandon(&self) {
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
    let client = target.client.clone();
    let test = async {
        match args.test {
            TestKind::Density(a) => density::run(a, target).await,
            TestKind::Load(a) => load::run(a, target).await,
            TestKind::Report(_) => unreachable!("handled above"),
        }
    };
    let run = tokio::select! {
        r = test => r?,
        // The run is dropped (its requests stop); what it created goes unless kept on purpose.
        _ = crate::signals::interrupted() => {
            let namespaces = measure::run_namespaces(&client).await?;
            if common.delete_namespace && !namespaces.is_empty() {
                eprintln!("interrupted; deleting {}", namespaces.join(", "));
                measure::delete_namespaces(&client, &namespaces, Duration::from_secs(common.timeout)).await?;
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
