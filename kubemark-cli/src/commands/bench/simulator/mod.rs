//! The simulators a bench measures, one file each and all of one shape ([`Simulator`]): ours
//! (as shipped, without its kubelet API, or on a stock connection), upstream's `cmd/kubemark`
//! and KWOK.

mod common;
mod kwok;
mod ours;
mod upstream;

pub use common::{Simulator, local_options};
pub use kwok::Kwok;
pub use ours::{Ours, Variant};
pub use upstream::{Upstream, check_inotify_instances};
