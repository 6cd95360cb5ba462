//! `hollow-node`: one or many hollow nodes in one process, with upstream kubemark's flags.

use std::process::ExitCode;

use clap::Parser;
use kubemark_hollow::cli::HollowNodeArgs;

/// Hollow nodes: kubelet behaviour as the API server sees it, without running anything.
#[derive(Debug, Parser)]
#[command(name = "hollow-node", version)]
struct Flags {
    #[command(flatten)]
    args: HollowNodeArgs,
    /// Log filter (KUBEMARK_LOG wins).
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBEMARK_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{},kube_client=off", flags.log_level))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    kubemark_hollow::cli::run(&flags.args)
}
