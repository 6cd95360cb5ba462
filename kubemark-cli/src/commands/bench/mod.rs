//! `kubemark bench`: hollow nodes measured on this machine against a real local control plane,
//! ours beside upstream's `cmd/kubemark` and KWOK. Prints a table and optionally writes JSON;
//! never asserts (targets are for people to judge).
//!
//! - [`simulator`]: what is measured, one file per implementation, all of one shape;
//! - [`phase`]: how, one file per phase (ready, settle, idle, pods, scrape);
//! - [`sample`] and [`report`]: what was found, and its table and JSON;
//! - [`apiserver`], [`leases`], [`process`]: the readings the phases share.

mod apiserver;
mod leases;
mod phase;
mod process;
mod report;
mod sample;
mod simulator;

use anyhow::Context;
use kubemark_core::binaries::BinaryLocator;
use kubemark_core::master::LocalControlPlane;

use self::sample::Sample;
use self::simulator::{Kwok, Ours, Simulator, Upstream, Variant};
use crate::cli::BenchArgs;

/// Runs one measurement unless interrupted; dropping it stops what it started (the control
/// plane's own `Drop`, the simulator's guards, the temporary directories).
async fn unless_interrupted(
    measurement: impl Future<Output = anyhow::Result<Sample>>,
) -> anyhow::Result<anyhow::Result<Sample>> {
    tokio::select! {
        r = measurement => Ok(r),
        _ = crate::signals::interrupted() => anyhow::bail!("interrupted; the run's control plane and hollow nodes were stopped"),
    }
}

/// One measurement: a control plane of its own, `sim`'s `n` nodes joined, then the phases.
async fn measure(mut sim: impl Simulator, n: usize, args: &BenchArgs) -> anyhow::Result<Sample> {
    sim.check(args)?;
    let binaries = BinaryLocator::from_env()
        .with_bin_dir(args.bin_dir.clone())
        .locate()?;
    let mut cp = LocalControlPlane::start(simulator::local_options(binaries, args)?)
        .await
        .context("starting the control plane")?;
    let result = async {
        let joined = sim.join(&cp, n, args).await?;
        let mut sample = phase::idle::run(
            sim.implementation(),
            n,
            &joined.pids,
            joined.seconds_to_ready,
            &mut cp,
            args,
        )
        .await?;
        if args.scrape > 0 && sim.scraped() {
            eprintln!(
                "metrics-server scrapes {n} hollow nodes for {} s ...",
                args.scrape
            );
            match phase::scrape::run(&cp, &joined.pids, n, args.scrape, args.bin_dir.as_ref()).await
            {
                Ok(p) => sample.scrape = Some(p),
                Err(e) => sample.scrape_error = Some(format!("{e:#}")),
            }
        }
        Ok(sample)
    }
    .await;
    sim.stop().await;
    cp.stop().await?;
    result
}

/// Measures `sim` (made afresh by `make`) at each node count; a failed measurement is recorded
/// in `failures` and the others still run.
async fn each<S: Simulator>(
    counts: &[usize],
    make: impl Fn() -> S,
    args: &BenchArgs,
    samples: &mut Vec<Sample>,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    for &n in counts {
        let sim = make();
        eprintln!("{}", sim.announce(n));
        let implementation = sim.implementation();
        match unless_interrupted(measure(sim, n, args)).await? {
            Ok(s) => samples.push(s),
            Err(e) => failures.push(format!("{implementation}, {n} nodes: {e:#}")),
        }
    }
    Ok(())
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    // Bad flags fail the command before anything starts, not each measurement.
    crate::master_args::MasterArgs::parse(&args.master_args)?;
    // Both hollow nodes read 0 or less as "no limit" differently (client-go: 0 is its default
    // of 5, below 0 none); a positive number means the same to both.
    anyhow::ensure!(
        args.kube_api_qps.is_finite() && args.kube_api_qps > 0.0,
        "--kube-api-qps must be a positive number, not {}",
        args.kube_api_qps
    );
    if let Some(&most) = args.upstream.iter().max() {
        simulator::check_inotify_instances(most)?;
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this kubemark is a debug build; build with --release for representative numbers"
        );
    }
    let mut samples = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let (s, f) = (&mut samples, &mut failures);
    each(&args.nodes, || Ours::new(Variant::Default), &args, s, f).await?;
    each(
        &args.kubelet_api_off,
        || Ours::new(Variant::NoApi),
        &args,
        s,
        f,
    )
    .await?;
    let stock = || Ours::new(Variant::StockConnection);
    each(&args.stock_connection, stock, &args, s, f).await?;
    each(&args.upstream, Upstream::default, &args, s, f).await?;
    each(&args.kwok, Kwok::default, &args, s, f).await?;
    report::print(&samples);
    if let Some(path) = &args.json {
        report::write_json(path, &args, &samples, &failures)?;
    }
    report::warnings(&samples, &mut failures);
    for f in &failures {
        eprintln!("failed: {f}");
    }
    anyhow::ensure!(
        failures.is_empty(),
        "{} of the runs failed (the others are reported above)",
        failures.len()
    );
    Ok(())
}
