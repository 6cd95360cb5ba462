//! One module per subcommand.

mod bench;
mod debug;
pub(crate) mod external;
mod image;
pub(crate) mod nodes;
mod start;
mod status;
mod stop;
pub mod test;

use kubemark_core::registry::ProviderRegistry;

use crate::cli::{Cli, Command};

/// Runs the parsed command line with the providers of `registry`.
pub async fn run(cli: Cli, registry: &ProviderRegistry) -> anyhow::Result<()> {
    match cli.command {
        Command::Start(args) => start::run(*args, registry).await,
        Command::Stop(args) => stop::run(args, registry).await,
        Command::Status(args) => status::run(args, registry).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Test(args) => test::run(args).await,
        Command::Debug(args) => debug::debug(args).await,
        Command::Logs(args) => debug::logs(args).await,
        Command::Image(args) => image::run(args, registry).await,
    }
}
