//! The `kubemark` command line as a library: [`run`] is the whole program, given the providers
//! it knows. The `kubemark` binary runs it with [`bundled_providers`]; a third party ships its
//! own binary with more:
//!
//! ```no_run
//! # use kubemark_core::registry::LocalEntry as MyEntry;
//! fn main() -> std::process::ExitCode {
//!     kubemark_cli::run(kubemark_cli::bundled_providers().with(MyEntry))
//! }
//! ```
//!
//! (`docs/provider-contract.md` walks through it, with `examples/provider-example`.)

mod cli;
mod commands;
mod config;
mod hollow_binary;
mod master_args;
mod progress;
mod providers;
mod signals;
mod state;

use std::process::ExitCode;

pub use kubemark_core::registry::ProviderRegistry;

/// The providers the `kubemark` binary bundles: local, gce, aws and pre-existing.
pub fn bundled_providers() -> ProviderRegistry {
    ProviderRegistry::new()
        .with(kubemark_core::registry::LocalEntry)
        .with(kubemark_provider_gce::GceEntry)
        .with(kubemark_provider_aws::AwsEntry)
        .with(kubemark_provider_preexisting::PreexistingEntry)
}

/// Parses the process's arguments and runs the command with the providers of `registry`;
/// errors are printed as one line.
pub fn run(registry: ProviderRegistry) -> ExitCode {
    let cli = match cli::parse(&registry) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
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
    match runtime.block_on(commands::run(cli, &registry)) {
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
