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
    if let Err(e) = kubemark_hollow::cli::init_logging(&flags.args, &flags.log_level) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    kubemark_hollow::cli::run(&flags.args)
}
