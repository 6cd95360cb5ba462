//! `kubemark`: start a kubemark cluster (a real control plane plus hollow nodes), run
//! scalability tests against it, and tear it down.

fn main() -> std::process::ExitCode {
    kubemark_cli::run(kubemark_cli::bundled_providers())
}
