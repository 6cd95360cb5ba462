//! Pod IPs from the node's `spec.podCIDR`: unique per pod, freed on delete, as host-local IPAM
//! does (the first address is the bridge gateway, so pods start at .2).

use std::net::Ipv4Addr;

/// An allocator over one IPv4 CIDR.
#[derive(Debug, Clone)]
pub struct Ipam {
    cidr: String,
    base: u32,
    used: Vec<bool>,
    next: usize,
}

/// Why an address could not be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// The CIDR does not parse or is not IPv4.
    #[error("pod CIDR {0:?} is not an IPv4 CIDR")]
    BadCidr(String),
    /// Every address is in use.
    #[error("pod CIDR {0} is exhausted: every address is in use")]
    Exhausted(String),
}

impl Ipam {
    /// An allocator for `cidr` (e.g. `10.64.3.0/24`).
    pub fn new(cidr: &str) -> Result<Self, IpamError> {
        let bad = || IpamError::BadCidr(cidr.into());
        let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let len: u32 = len.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&len) {
            return Err(bad());
        }
        let size = 1usize << (32 - len);
        let base = u32::from(addr) & (u32::MAX << (32 - len));
        // Usable: .2 .. broadcast-1 (network, gateway and broadcast excluded).
        Ok(Self {
            cidr: cidr.into(),
            base,
            used: vec![false; size - 3],
            next: 0,
        })
    }

    /// The CIDR.
    pub fn cidr(&self) -> &str {
        &self.cidr
    }

    fn index(&self, ip: Ipv4Addr) -> Option<usize> {
        let offset = u32::from(ip).checked_sub(self.base + 2)? as usize;
        (offset < self.used.len()).then_some(offset)
    }

    /// Whether `ip` belongs to the allocatable range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.index(ip).is_some()
    }

    /// The next free address.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, IpamError> {
        let n = self.used.len();
        for i in 0..n {
            let idx = (self.next + i) % n;
            if !self.used[idx] {
                self.used[idx] = true;
                // Next-fit: a freed address is not handed out again at once, as host-local IPAM avoids.
                self.next = (idx + 1) % n;
                return Ok(Ipv4Addr::from(self.base + 2 + idx as u32));
            }
        }
        Err(IpamError::Exhausted(self.cidr.clone()))
    }

    /// Marks `ip` as used (a pod found Running after a restart); false when out of range or taken.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        match self.index(ip) {
            Some(i) if !self.used[i] => {
                self.used[i] = true;
                true
            }
            _ => false,
        }
    }

    /// Frees `ip`.
    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(i) = self.index(ip) {
            self.used[i] = false;
        }
    }

    /// Addresses in use.
    pub fn in_use(&self) -> usize {
        self.used.iter().filter(|u| **u).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_inside_the_cidr_and_reusable_after_release() {
        let mut ipam = Ipam::new("10.64.3.0/29").unwrap();
        let mut got: Vec<Ipv4Addr> = (0..5).map(|_| ipam.allocate().unwrap()).collect();
        assert_eq!(got.first().unwrap().to_string(), "10.64.3.2");
        assert_eq!(got.last().unwrap().to_string(), "10.64.3.6");
        assert_eq!(
            ipam.allocate(),
            Err(IpamError::Exhausted("10.64.3.0/29".into()))
        );
        ipam.release(got[2]);
        assert_eq!(ipam.allocate().unwrap(), got[2]);
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 5);
        assert!(
            !ipam.reserve("10.64.4.2".parse().unwrap()),
            "outside the CIDR"
        );
        assert!(Ipam::new("fd00::/64").is_err());
    }

    #[test]
    fn reserve_rebuilds_state_after_restart() {
        let mut ipam = Ipam::new("10.64.0.0/24").unwrap();
        assert!(ipam.reserve("10.64.0.2".parse().unwrap()));
        assert!(!ipam.reserve("10.64.0.2".parse().unwrap()), "already taken");
        assert_ne!(ipam.allocate().unwrap().to_string(), "10.64.0.2");
        assert_eq!(ipam.in_use(), 2);
    }
}
