//! `kubemark`: start a kubemark cluster (a real control plane plus hollow nodes), run
//! scalability tests against it, and tear it down.

mod cli;
mod commands;
mod config;
mod progress;
mod state;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc, not glibc's malloc: in a 1,000-node density run glibc's malloc and free were ~30 %
/// of the hollow process's CPU (perf), most of it fastbin consolidation after the large
/// short-lived buffers of watch events and status patches. Memory per idle node is the same
/// with both (heap, not fragmentation); mimalloc cost ~25 % more memory. Measured in
/// docs/benchmarks.md ("Own API client, jemalloc ...").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let cli::Command::HollowNode(args) = &cli.command {
        // Hollow nodes log at info by default: their log is the one users read for them.
        let level = if cli.log_level == "warn" {
            "info"
        } else {
            cli.log_level.as_str()
        };
        if let Err(e) = kubemark_hollow::cli::init_logging(args, level) {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
        return kubemark_hollow::cli::run(args);
    }
    init_tracing(&cli.log_level);
    kubemark_core::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes joined, as `{:#}` renders it.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBEMARK_LOG")
        // kube-client logs every failed request at ERROR; readiness polling fails on purpose
        // until the API server is up, so those lines would only alarm.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},kube_client=off")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Hollow nodes log to a file that `kubemark logs` greps: no colour codes there.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
