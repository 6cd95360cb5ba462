//! The kubelet's status manager: the one writer of a node's pod statuses and final deletes.
//!
//! The pod worker only *sets* a pod's desired status; one task per node syncs what changed, pod
//! by pod, in series, as the kubelet's status manager goroutine does: GET the pod (to check it is
//! still the same pod and to see whether it is being deleted), PATCH its status unless the API
//! server already has it, and once the pod is terminated and its resources are released, DELETE
//! it with grace period 0 and a UID precondition. Because the sync is serial, statuses set while
//! the task is busy with other pods are coalesced (only the newest is written), which is where a
//! real kubelet's request mix under load comes from: fewer PATCHes than status changes, a GET
//! per sync, one DELETE per pod.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::api::Api;
use crate::node::NodeContext;

/// How often failed syncs are retried, as the kubelet's status manager's resync ticker.
const RESYNC: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Entry {
    namespace: Box<str>,
    name: Box<str>,
    /// The newest status not yet written.
    status: Option<Value>,
    /// The pod's containers are stopped and its resources released: it can go once it is
    /// marked for deletion.
    deletable: bool,
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<Box<str>, Entry>,
    /// A hash of the status last written per pod, so a sync that only deletes skips the PATCH.
    written: HashMap<Box<str>, u64>,
}

/// One node's status manager (cheap to clone: a handle).
#[derive(Debug, Clone)]
pub(crate) struct StatusManager {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

enum Outcome {
    Done,
    /// The pod is no longer there (or is another pod now): forget it.
    Gone,
    Retry,
}

impl StatusManager {
    /// Starts the node's sync task.
    pub(crate) fn start(ctx: Arc<NodeContext>) -> (Self, tokio::task::JoinHandle<()>) {
        let manager = StatusManager {
            state: Arc::new(Mutex::new(State::default())),
            wake: Arc::new(Notify::new()),
        };
        let task = tokio::spawn(manager.clone().run(ctx));
        (manager, task)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry<R>(&self, uid: &str, ns: &str, name: &str, f: impl FnOnce(&mut Entry) -> R) -> R {
        let mut state = self.state();
        let entry = state.pending.entry(uid.into()).or_insert_with(|| Entry {
            namespace: ns.into(),
            name: name.into(),
            status: None,
            deletable: false,
        });
        let r = f(entry);
        drop(state);
        self.wake.notify_one();
        r
    }

    /// Sets the pod's status; written by the next sync unless a newer one replaces it first.
    pub(crate) fn set(&self, uid: &str, ns: &str, name: &str, status: Value) {
        self.entry(uid, ns, name, |e| e.status = Some(status));
    }

    /// The pod is terminated and its resources released: delete it when the API server says it
    /// is being deleted.
    pub(crate) fn deletable(&self, uid: &str, ns: &str, name: &str) {
        self.entry(uid, ns, name, |e| e.deletable = true);
    }

    /// Drops everything about a pod the API server no longer has.
    pub(crate) fn forget(&self, uid: &str) {
        let mut state = self.state();
        state.pending.remove(uid);
        state.written.remove(uid);
    }

    async fn run(self, ctx: Arc<NodeContext>) {
        loop {
            // A failed sync is retried on the resync tick, not in a hot loop.
            let _ = tokio::time::timeout(RESYNC, self.wake.notified()).await;
            if ctx.partitioned() {
                continue;
            }
            let batch: Vec<(Box<str>, Entry)> = {
                let mut state = self.state();
                state.pending.drain().collect()
            };
            for (uid, entry) in batch {
                // Boxed: the requests' state exists only while a sync runs.
                match Box::pin(self.sync(&ctx, &uid, &entry)).await {
                    Outcome::Done => {}
                    Outcome::Gone => self.forget(&uid),
                    Outcome::Retry => self.requeue(uid, entry),
                }
            }
        }
    }

    /// Puts a failed entry back unless a newer status came meanwhile.
    fn requeue(&self, uid: Box<str>, entry: Entry) {
        let mut state = self.state();
        let slot = state.pending.entry(uid).or_insert(Entry {
            status: None,
            deletable: false,
            ..entry
        });
        if slot.status.is_none() {
            slot.status = entry.status;
        }
        slot.deletable |= entry.deletable;
    }

    async fn sync(&self, ctx: &NodeContext, uid: &str, entry: &Entry) -> Outcome {
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &entry.namespace);
        ctx.limiter.acquire().await;
        // Only the uid and whether the pod is being deleted are read (in protobuf, as the
        // kubelet asks for it).
        let fetched = match api.get_meta(&entry.name).await {
            Ok(Some(f)) => f,
            Ok(None) => return Outcome::Gone,
            Err(e) => {
                tracing::debug!(node = %ctx.name, pod = %entry.name, error = %e, "pod status sync: get failed");
                return Outcome::Retry;
            }
        };
        if fetched.uid.as_deref() != Some(uid) {
            // Deleted and recreated under the same name: the status belonged to the old pod.
            return Outcome::Gone;
        }
        if let Some(status) = &entry.status {
            let hash = crate::node::object::digest(status);
            let unchanged = {
                let state = self.state();
                state.written.get(uid) == Some(&hash)
            };
            if !unchanged {
                ctx.limiter.acquire().await;
                let body = json!({ "status": status });
                match api
                    .patch_status(
                        &entry.name,
                        &PatchParams::default(),
                        &Patch::Strategic(&body),
                    )
                    .await
                {
                    Ok(_) => {
                        let mut state = self.state();
                        state.written.insert(uid.into(), hash);
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => return Outcome::Gone,
                    Err(e) => {
                        tracing::debug!(node = %ctx.name, pod = %entry.name, error = %e, "status update failed");
                        return Outcome::Retry;
                    }
                }
            }
        }
        if !(entry.deletable && fetched.deleting) {
            return Outcome::Done;
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        ctx.limiter.acquire().await;
        match api.delete(&entry.name, &params).await {
            Ok(_) => Outcome::Done,
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Outcome::Gone,
            Err(e) => {
                tracing::warn!(node = %ctx.name, pod = %entry.name, error = %e, "final delete failed");
                Outcome::Retry
            }
        }
    }
}
