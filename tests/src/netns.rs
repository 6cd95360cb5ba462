//! A network namespace of the test's own, reached from this host over a veth pair: addresses
//! that are not loopback, which the API server's node proxy and aggregation layer accept
//! (they refuse 127.0.0.0/8). Traffic stays on this machine: the namespace is a /24 of
//! 198.18.0.0/15 (RFC 2544, benchmarking) routed into the veth, and the host's end has a
//! /30 of 198.19.0.0/16. Needs root (CAP_NET_ADMIN), which CI has.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

/// The namespace; removed (with its veth pair and routes) on drop.
pub struct NetNs {
    /// The namespace's name (`ip netns`).
    pub name: String,
    /// Its file, for `hollow-node --listen-netns`.
    pub path: PathBuf,
    /// The host's end of the veth pair: an address processes on this host can listen on that
    /// the API server does not refuse.
    pub host_ip: Ipv4Addr,
    /// The first of the namespace's 254 local addresses (`198.18.X.1`).
    pub first_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip (iproute2): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl NetNs {
    /// Creates the namespace. Panics with the reason when it cannot (not root, no `ip`):
    /// tests never skip silently.
    pub fn create() -> Self {
        assert!(
            nix_is_root(),
            "this test creates a network namespace and needs root (CAP_NET_ADMIN); CI runs as root"
        );
        for _ in 0..8 {
            let x: u8 = rand::random();
            // A /24 nobody routes yet.
            let routed = ip(&["route", "show", &format!("198.18.{x}.0/24")]).unwrap_or_default();
            if !routed.trim().is_empty() {
                continue;
            }
            match Self::create_in(x) {
                Ok(ns) => return ns,
                Err(e) => eprintln!("network namespace for 198.18.{x}.0/24: {e}; trying another"),
            }
        }
        panic!("could not create a network namespace (see above)");
    }

    fn create_in(x: u8) -> Result<Self, String> {
        let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let name = format!("kmk-{tag}");
        let (host_if, ns_if) = (format!("kmkh{tag}"), format!("kmkn{tag}"));
        let host_ip = Ipv4Addr::new(198, 19, x, 1);
        let ns = NetNs {
            path: PathBuf::from(format!("/var/run/netns/{name}")),
            name: name.clone(),
            host_ip,
            first_ip: Ipv4Addr::new(198, 18, x, 1),
        };
        ip(&["netns", "add", &name])?;
        // From here on, drop removes what was made.
        let subnet = format!("198.18.{x}.0/24");
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        ip(&["link", "set", &ns_if, "netns", &name])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if])?;
        ip(&["link", "set", &host_if, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["-n", name.as_str()];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &format!("198.19.{x}.2/30"), "dev", &ns_if])?;
        inside(&["link", "set", &ns_if, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        // Every address of the /24 is the namespace's own: one per hollow node.
        inside(&["route", "add", "local", &subnet, "dev", "lo"])?;
        ip(&[
            "route",
            "add",
            &subnet,
            "via",
            &format!("198.19.{x}.2"),
            "dev",
            &host_if,
        ])?;
        Ok(ns)
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, hence the pair and the host's route.
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("removing network namespace {}: {e}", self.name);
        }
    }
}
