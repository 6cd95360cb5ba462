//! One module per subcommand.

mod bench;
mod debug;
pub(crate) mod external;
mod image;
pub(crate) mod nodes;
pub use external::ExternalConfig;
pub use nodes::NodeCerts;
mod start;
mod status;
mod stop;
pub mod test;

use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Start(args) => start::run(*args).await,
        Command::Stop(args) => stop::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Test(args) => test::run(args).await,
        Command::Debug(args) => debug::debug(args).await,
        Command::Logs(args) => debug::logs(args).await,
        Command::Image(args) => image::run(args).await,
        Command::HollowNode(_) => unreachable!("run by main before the runtime starts"),
    }
}
