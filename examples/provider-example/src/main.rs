//! `kubemark-example`: the `kubemark` command line with the bundled providers plus `example`.

fn main() -> std::process::ExitCode {
    kubemark_cli::run(
        kubemark_cli::bundled_providers().with(kubemark_provider_example::ExampleEntry),
    )
}
