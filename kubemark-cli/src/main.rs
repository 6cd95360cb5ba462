//! `kubemark`: start a kubemark cluster (a real control plane plus hollow nodes), run
//! scalability tests against it, and tear it down.

/// jemalloc, not glibc's malloc: in a 1,000-node density run glibc's malloc and free were ~30 %
/// of the hollow process's CPU (perf), most of it fastbin consolidation after the large
/// short-lived buffers of watch events and status patches. Memory per idle node is the same
/// with both (heap, not fragmentation); mimalloc cost ~25 % more memory. Measured in
/// docs/benchmarks.md ("Own API client, jemalloc ...").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    kubemark_cli::run(kubemark_cli::bundled_providers())
}
