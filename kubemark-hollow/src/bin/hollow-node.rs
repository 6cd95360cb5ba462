//! `hollow-node`: one or many hollow nodes in one process, with upstream kubemark's flags.

use std::process::ExitCode;

use clap::Parser;
use kubemark_hollow::cli::HollowNodeArgs;

/// jemalloc, not glibc's malloc: in a 1,000-node density run glibc's malloc and free were ~30 %
/// of the hollow process's CPU (perf), most of it fastbin consolidation after the large
/// short-lived buffers of watch events and status patches. Memory per idle node is the same
/// with both (heap, not fragmentation); mimalloc cost ~25 % more memory. Default settings:
/// the `_RJEM_MALLOC_CONF` variants tried changed nothing (docs/benchmarks.md, "Own API client,
/// jemalloc ...").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
