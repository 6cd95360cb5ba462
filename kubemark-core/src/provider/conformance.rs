//! The provider conformance suite: one set of checks every provider runs against its backend
//! (real cloud, emulator or memory), the object_store way.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use kubemark_core::provider::{MemoryProvider, conformance::Conformance};
//! Conformance::new(Arc::new(MemoryProvider::new())).run().await;
//! # }
//! ```
//!
//! Checks panic with a message naming the rule they saw broken, as test assertions do. Only the
//! declared [`Capabilities`] are exercised; undeclared ones must answer `Unsupported`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use super::{
    Capabilities, ClusterName, Disk, DiskSpec, DynProvider, ErrorKind, FirewallRule, FirewallSpec,
    InfrastructureSpec, MasterSpec, MasterVm, Provider, ProviderExt, Registry, ResourceRef, Result,
    Role, StaticIp, TeardownOptions,
};

/// The conformance suite for one provider.
#[derive(Debug)]
pub struct Conformance {
    provider: DynProvider,
    spec: InfrastructureSpec,
    prefix: String,
}

impl Conformance {
    /// A suite for `provider` with a default infrastructure spec (20 GiB disk + etcd-events disk).
    pub fn new(provider: DynProvider) -> Self {
        let spec = InfrastructureSpec {
            etcd_events_disk: Some(DiskSpec::etcd_events(10)),
            ..InfrastructureSpec::default()
        };
        let suffix: u32 = rand::rng().random_range(0..1_000_000);
        Self {
            provider,
            spec,
            prefix: format!("conf{suffix:06}"),
        }
    }

    /// Uses `spec` for every `ensure` (e.g. an AMI the emulator knows).
    pub fn with_spec(mut self, spec: InfrastructureSpec) -> Self {
        self.spec = spec;
        self
    }

    /// Runs every check; panics on the first broken rule. Cleans up what it created.
    pub async fn run(&self) {
        self.undeclared_operations_are_unsupported().await;
        if self.provider.capabilities() == Capabilities::NONE {
            // A provider that creates nothing has nothing to list, delete or tear down; its
            // remaining rules are its own (e.g. pre-existing hosts are never deleted).
            return;
        }
        self.ensure_is_idempotent().await;
        self.delete_of_missing_succeeds().await;
        self.teardown_removes_owned_and_nothing_foreign().await;
        self.teardown_resumes_after_failure().await;
        self.a_crash_after_any_creation_step_is_cleaned_up_by_tags()
            .await;
    }

    fn cluster(&self, tag: &str) -> ClusterName {
        ClusterName::new(format!("{}-{tag}", self.prefix)).expect("generated names are valid")
    }

    fn name(&self) -> &str {
        self.provider.name()
    }

    async fn owned(&self, cluster: &ClusterName) -> Vec<ResourceRef> {
        let mut owned = self.provider.list_owned(cluster).await.unwrap_or_else(|e| {
            panic!("[{}] list_owned failed: {e}", self.name());
        });
        owned.sort_by(|a, b| a.name.cmp(&b.name));
        owned
    }

    async fn ensure_all(&self, cluster: &ClusterName) {
        self.provider
            .ensure_infrastructure(cluster, &self.spec)
            .await
            .unwrap_or_else(|e| {
                panic!("[{}] ensure_infrastructure failed: {e}", self.name());
            });
    }

    async fn teardown(&self, cluster: &ClusterName) {
        self.provider
            .teardown(cluster, TeardownOptions::default())
            .await
            .unwrap_or_else(|e| {
                panic!("[{}] teardown failed: {e}", self.name());
            });
    }

    /// Rule: an operation outside the declared capabilities fails with `Unsupported`.
    pub async fn undeclared_operations_are_unsupported(&self) {
        let caps = self.provider.capabilities();
        let c = self.cluster("unsup");
        let p = &self.provider;
        let checks: [(bool, &str, Option<ErrorKind>); 5] = [
            (
                caps.static_ip,
                "ensure_static_ip",
                p.ensure_static_ip(&c).await.err().map(|e| e.kind()),
            ),
            (
                caps.disks,
                "ensure_disk",
                p.ensure_disk(&c, &self.spec.master_disk)
                    .await
                    .err()
                    .map(|e| e.kind()),
            ),
            (
                caps.firewall,
                "ensure_firewall",
                p.ensure_firewall(&c, &self.spec.firewall)
                    .await
                    .err()
                    .map(|e| e.kind()),
            ),
            (
                caps.master_vm,
                "ensure_master",
                p.ensure_master(&c, &self.spec.master)
                    .await
                    .err()
                    .map(|e| e.kind()),
            ),
            (
                caps.registry,
                "ensure_registry",
                p.ensure_registry(&c).await.err().map(|e| e.kind()),
            ),
        ];
        for (declared, op, outcome) in checks {
            if !declared {
                assert_eq!(
                    outcome,
                    Some(ErrorKind::Unsupported),
                    "[{}] {op} is not declared in capabilities, so it must fail with Unsupported",
                    self.name()
                );
            }
        }
        if caps != Capabilities::NONE {
            self.teardown(&c).await;
        }
    }

    /// Rule: every `ensure_*` is get-or-create; twice creates once and returns the same thing.
    pub async fn ensure_is_idempotent(&self) {
        let c = self.cluster("idem");
        let first = self.provider.ensure_infrastructure(&c, &self.spec).await;
        let first = first.unwrap_or_else(|e| panic!("[{}] first ensure failed: {e}", self.name()));
        let owned_after_first = self.owned(&c).await;
        let second = self.provider.ensure_infrastructure(&c, &self.spec).await;
        let second =
            second.unwrap_or_else(|e| panic!("[{}] second ensure failed: {e}", self.name()));
        assert_eq!(
            first,
            second,
            "[{}] ensure twice must return the same resources",
            self.name()
        );
        assert_eq!(
            owned_after_first,
            self.owned(&c).await,
            "[{}] ensure twice must not create anything new",
            self.name()
        );
        assert_eq!(
            distinct_roles(&owned_after_first),
            expected_roles(self.provider.capabilities(), &self.spec),
            "[{}] list_owned must find every resource ensure created: {owned_after_first:?}",
            self.name()
        );
        self.teardown(&c).await;
    }

    /// Rule: deleting a missing resource succeeds, also when it was deleted just before.
    pub async fn delete_of_missing_succeeds(&self) {
        let c = self.cluster("gone");
        for role in Role::TEARDOWN_ORDER {
            let missing = ResourceRef {
                cluster: c.clone(),
                role,
                name: format!("{c}-never-{role}"),
                id: format!("{c}-never-{role}"),
            };
            if let Err(e) = self.provider.delete(&missing).await {
                panic!(
                    "[{}] delete of a missing {role} must succeed, got: {e}",
                    self.name()
                );
            }
        }
        self.ensure_all(&c).await;
        // In dependency order, as teardown deletes: a real cloud refuses to delete a disk still
        // attached to the master.
        let mut owned = self.owned(&c).await;
        owned.sort_by_key(|r| Role::TEARDOWN_ORDER.iter().position(|o| *o == r.role));
        for resource in owned {
            for attempt in 0..2 {
                if let Err(e) = self.provider.delete(&resource).await {
                    panic!(
                        "[{}] delete #{attempt} of {} failed: {e}",
                        self.name(),
                        resource.name
                    );
                }
            }
        }
        assert_eq!(
            self.owned(&c).await,
            Vec::new(),
            "[{}] deleted resources are still listed",
            self.name()
        );
    }

    /// Rule: teardown removes every resource tagged as the cluster's and nothing of another's;
    /// a dry run deletes nothing.
    pub async fn teardown_removes_owned_and_nothing_foreign(&self) {
        let mine = self.cluster("mine");
        let other = self.cluster("other");
        self.ensure_all(&mine).await;
        self.ensure_all(&other).await;
        let before_mine = self.owned(&mine).await;
        let before_other = self.owned(&other).await;

        let dry = self
            .provider
            .teardown(&mine, TeardownOptions { dry_run: true })
            .await;
        let dry = dry.unwrap_or_else(|e| panic!("[{}] dry-run teardown failed: {e}", self.name()));
        assert_eq!(
            dry.resources.len(),
            before_mine.len(),
            "[{}] dry run must list every owned resource",
            self.name()
        );
        assert_eq!(
            self.owned(&mine).await,
            before_mine,
            "[{}] dry run must delete nothing",
            self.name()
        );

        self.teardown(&mine).await;
        assert_eq!(
            self.owned(&mine).await,
            Vec::new(),
            "[{}] teardown left owned resources",
            self.name()
        );
        assert_eq!(
            self.owned(&other).await,
            before_other,
            "[{}] teardown of one cluster touched another cluster's resources",
            self.name()
        );
        self.teardown(&other).await;
    }

    /// Rule: a teardown that failed half-way finishes when run again, from tags alone.
    pub async fn teardown_resumes_after_failure(&self) {
        let c = self.cluster("resume");
        self.ensure_all(&c).await;
        let owned = self.owned(&c).await;
        if owned.len() >= 2 {
            let failing = FailingDeletes {
                inner: self.provider.clone(),
                fail_at: 1,
                calls: AtomicUsize::new(0),
            };
            let err = failing.teardown(&c, TeardownOptions::default()).await;
            assert!(
                err.is_err(),
                "[{}] the injected delete failure must surface from teardown",
                self.name()
            );
            let left = self.owned(&c).await;
            assert!(
                !left.is_empty() && left.len() < owned.len(),
                "[{}] after a failure at the second delete, some but not all resources remain: {left:?}",
                self.name()
            );
        }
        self.teardown(&c).await;
        assert_eq!(
            self.owned(&c).await,
            Vec::new(),
            "[{}] resumed teardown left resources",
            self.name()
        );
    }
}

/// The roles of `owned`, sorted by name: a role may take more than one resource (GCE's firewall
/// is one rule per port), so resources are counted by role.
fn distinct_roles(owned: &[ResourceRef]) -> Vec<Role> {
    let mut roles: Vec<Role> = owned.iter().map(|r| r.role).collect();
    roles.sort_by_key(|r| r.as_str());
    roles.dedup();
    roles
}

/// The roles `ensure_infrastructure` creates, sorted by name.
fn expected_roles(caps: Capabilities, spec: &InfrastructureSpec) -> Vec<Role> {
    let mut roles = Vec::new();
    if caps.disks {
        roles.push(Role::MasterDisk);
        if spec.etcd_events_disk.is_some() {
            roles.push(Role::EtcdEventsDisk);
        }
    }
    for (declared, role) in [
        (caps.static_ip, Role::StaticIp),
        (caps.firewall, Role::Firewall),
        (caps.master_vm, Role::Master),
        (caps.registry, Role::Registry),
    ] {
        if declared {
            roles.push(role);
        }
    }
    roles.sort_by_key(|r| r.as_str());
    roles
}

/// How many `ensure_*` calls `ensure_infrastructure` makes.
fn expected_count(caps: Capabilities, spec: &InfrastructureSpec) -> usize {
    expected_roles(caps, spec).len()
}

impl Conformance {
    /// Rule: whatever step of `ensure_infrastructure` a start crashes after, what it created so
    /// far is found by tags and removed by teardown.
    pub async fn a_crash_after_any_creation_step_is_cleaned_up_by_tags(&self) {
        let steps = expected_count(self.provider.capabilities(), &self.spec);
        for allowed in 0..steps {
            let c = self.cluster(&format!("crash{allowed}"));
            let crashing = CrashingEnsures {
                inner: self.provider.clone(),
                allowed,
                calls: AtomicUsize::new(0),
            };
            let r = crashing.ensure_infrastructure(&c, &self.spec).await;
            assert!(
                r.is_err(),
                "[{}] the injected crash after step {allowed} must surface",
                self.name()
            );
            assert_eq!(
                distinct_roles(&self.owned(&c).await).len(),
                allowed,
                "[{}] after a crash following {allowed} creation step(s), exactly those resources exist and are found by tags",
                self.name()
            );
            self.teardown(&c).await;
            assert_eq!(
                self.owned(&c).await,
                Vec::new(),
                "[{}] teardown after a crash following step {allowed} left resources",
                self.name()
            );
        }
    }
}

/// Delegates to `inner` but lets only the first `allowed` `ensure_*` calls through; every later
/// one fails as if the process had crashed there.
#[derive(Debug)]
struct CrashingEnsures {
    inner: Arc<dyn Provider>,
    allowed: usize,
    calls: AtomicUsize,
}

impl CrashingEnsures {
    fn step(&self, operation: &'static str) -> Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.allowed {
            return Err(super::Error::new(
                ErrorKind::Temporary,
                self.name().to_string(),
                operation,
                "injected crash",
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for CrashingEnsures {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn ensure_static_ip(&self, c: &ClusterName) -> Result<StaticIp> {
        self.step("ensure_static_ip")?;
        self.inner.ensure_static_ip(c).await
    }
    async fn ensure_disk(&self, c: &ClusterName, s: &DiskSpec) -> Result<Disk> {
        self.step("ensure_disk")?;
        self.inner.ensure_disk(c, s).await
    }
    async fn ensure_firewall(&self, c: &ClusterName, s: &FirewallSpec) -> Result<FirewallRule> {
        self.step("ensure_firewall")?;
        self.inner.ensure_firewall(c, s).await
    }
    async fn ensure_master(&self, c: &ClusterName, s: &MasterSpec) -> Result<MasterVm> {
        self.step("ensure_master")?;
        self.inner.ensure_master(c, s).await
    }
    async fn ensure_registry(&self, c: &ClusterName) -> Result<Registry> {
        self.step("ensure_registry")?;
        self.inner.ensure_registry(c).await
    }
    async fn list_owned(&self, c: &ClusterName) -> Result<Vec<ResourceRef>> {
        self.inner.list_owned(c).await
    }
    async fn delete(&self, r: &ResourceRef) -> Result<()> {
        self.inner.delete(r).await
    }
}

/// Delegates to `inner` but fails the `fail_at`-th delete (0-based), as a crash or outage would.
#[derive(Debug)]
struct FailingDeletes {
    inner: Arc<dyn Provider>,
    fail_at: usize,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Provider for FailingDeletes {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn ensure_static_ip(&self, c: &ClusterName) -> Result<StaticIp> {
        self.inner.ensure_static_ip(c).await
    }
    async fn ensure_disk(&self, c: &ClusterName, s: &DiskSpec) -> Result<Disk> {
        self.inner.ensure_disk(c, s).await
    }
    async fn ensure_firewall(&self, c: &ClusterName, s: &FirewallSpec) -> Result<FirewallRule> {
        self.inner.ensure_firewall(c, s).await
    }
    async fn ensure_master(&self, c: &ClusterName, s: &MasterSpec) -> Result<MasterVm> {
        self.inner.ensure_master(c, s).await
    }
    async fn ensure_registry(&self, c: &ClusterName) -> Result<Registry> {
        self.inner.ensure_registry(c).await
    }
    async fn list_owned(&self, c: &ClusterName) -> Result<Vec<ResourceRef>> {
        self.inner.list_owned(c).await
    }
    async fn delete(&self, r: &ResourceRef) -> Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == self.fail_at {
            return Err(super::Error::new(
                ErrorKind::Temporary,
                self.name().to_string(),
                "delete",
                "injected failure",
            ));
        }
        self.inner.delete(r).await
    }
}
