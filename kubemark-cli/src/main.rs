//! `kubemark`: start a kubemark cluster (a real control plane plus hollow nodes), run
//! scalability tests against it, and tear it down.

mod cli;
mod commands;
mod config;
mod hollow_binary;
mod progress;
mod state;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
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
        // No colour codes in a file (a bench or CI log).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
