/// The operations a provider declares (the OpenDAL pattern): callers and the conformance suite
/// skip what is not declared, and undeclared operations must fail with `Unsupported`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// Creates (or adopts) the master VM.
    pub master_vm: bool,
    /// Creates master disks (data, and etcd-events when asked).
    pub disks: bool,
    /// Reserves a static IP for the master.
    pub static_ip: bool,
    /// Opens the secure port with a firewall rule.
    pub firewall: bool,
    /// Provides an image registry with push credentials.
    pub registry: bool,
}

impl Capabilities {
    /// A provider that creates nothing.
    pub const NONE: Capabilities = Capabilities {
        master_vm: false,
        disks: false,
        static_ip: false,
        firewall: false,
        registry: false,
    };
    /// A provider that creates everything.
    pub const ALL: Capabilities = Capabilities {
        master_vm: true,
        disks: true,
        static_ip: true,
        firewall: true,
        registry: true,
    };

    /// Builder-style setter for [`Capabilities::master_vm`].
    pub const fn with_master_vm(mut self, on: bool) -> Self {
        self.master_vm = on;
        self
    }

    /// Builder-style setter for [`Capabilities::registry`].
    pub const fn with_registry(mut self, on: bool) -> Self {
        self.registry = on;
        self
    }
}
