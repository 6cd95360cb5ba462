//! Pod start-up latency, as ClusterLoader2's PodStartupLatency measures it: from a pod's create
//! to the watch seeing it Running, split at the moment it was seen scheduled.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};

use super::report::{Percentiles, ms};
use super::scheduling;

/// When the test saw a pod pass each stage.
#[derive(Debug, Default, Clone, Copy)]
struct Timeline {
    created: Option<Instant>,
    scheduled: Option<Instant>,
    running: Option<Instant>,
}

/// Watches the pods a test makes (by label selector, all namespaces) and times their start-up.
pub struct PodTracker {
    timelines: Arc<Mutex<HashMap<String, Timeline>>>,
    /// Pods in phase Running now (removed when they stop running or are deleted).
    running_now: Arc<Mutex<HashSet<String>>>,
    watch: tokio::task::JoinHandle<()>,
    start: Instant,
}

/// Start-up of the pods a tracker saw.
#[derive(Debug, Clone)]
pub struct PodTimings {
    /// create → Running, ms.
    pub startup: Percentiles,
    /// create → scheduled, ms.
    pub to_schedule: Percentiles,
    /// scheduled → Running, ms.
    pub to_run: Percentiles,
    /// Pods scheduled per second.
    pub throughput: Percentiles,
}

fn key_of(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

impl PodTracker {
    /// Starts watching. Pods the test creates itself are timed from [`PodTracker::created`];
    /// pods a controller creates are timed from the moment the watch first delivered them,
    /// which is the earliest instant this client can know of them (creationTimestamp has
    /// one-second resolution).
    pub fn start(client: kube::Client, selector: &str) -> Self {
        let timelines: Arc<Mutex<HashMap<String, Timeline>>> = Arc::default();
        let running_now: Arc<Mutex<HashSet<String>>> = Arc::default();
        let pods: Api<Pod> = Api::all(client);
        let config = watcher::Config::default().labels(selector);
        let watch = {
            let timelines = timelines.clone();
            let running_now = running_now.clone();
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(watcher::watcher(pods, config));
                while let Some(event) = stream.next().await {
                    let pod = match event {
                        Ok(Event::Apply(p) | Event::InitApply(p)) => p,
                        Ok(Event::Delete(p)) => {
                            running_now
                                .lock()
                                .expect("not poisoned")
                                .remove(&key_of(&p));
                            continue;
                        }
                        _ => continue,
                    };
                    let now = Instant::now();
                    let key = key_of(&pod);
                    let status = pod.status.unwrap_or_default();
                    let scheduled = status
                        .conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "PodScheduled" && c.status == "True");
                    let running = status.phase.as_deref() == Some("Running");
                    {
                        let mut live = running_now.lock().expect("not poisoned");
                        if running {
                            live.insert(key.clone());
                        } else {
                            live.remove(&key);
                        }
                    }
                    let mut t = timelines.lock().expect("not poisoned");
                    let entry = t.entry(key).or_default();
                    entry.created.get_or_insert(now);
                    if scheduled && entry.scheduled.is_none() {
                        entry.scheduled = Some(now);
                    }
                    if running && entry.running.is_none() {
                        entry.running = Some(now);
                        entry.scheduled.get_or_insert(now);
                    }
                }
            })
        };
        Self {
            timelines,
            running_now,
            watch,
            start: Instant::now(),
        }
    }

    /// Records that the test is about to create `namespace/name`.
    pub fn created(&self, namespace: &str, name: &str) {
        self.timelines
            .lock()
            .expect("not poisoned")
            .entry(format!("{namespace}/{name}"))
            .or_default()
            .created = Some(Instant::now());
    }

    /// Pods seen Running at least once.
    pub fn running(&self) -> usize {
        self.timelines
            .lock()
            .expect("not poisoned")
            .values()
            .filter(|t| t.running.is_some())
            .count()
    }

    /// Pods Running now.
    pub fn running_now(&self) -> usize {
        self.running_now.lock().expect("not poisoned").len()
    }

    /// Pods seen at all.
    pub fn seen(&self) -> usize {
        self.timelines.lock().expect("not poisoned").len()
    }

    /// Stops watching and computes the timings of the pods seen through every stage.
    pub fn finish(self) -> PodTimings {
        self.watch.abort();
        let t = self.timelines.lock().expect("not poisoned").clone();
        let mut startup = Vec::new();
        let mut to_schedule = Vec::new();
        let mut to_run = Vec::new();
        let mut scheduled_in = Vec::new();
        for tl in t.values() {
            let (Some(c), Some(s), Some(r)) = (tl.created, tl.scheduled, tl.running) else {
                continue;
            };
            startup.push(ms(r.saturating_duration_since(c)));
            to_schedule.push(ms(s.saturating_duration_since(c)));
            to_run.push(ms(r.saturating_duration_since(s)));
            scheduled_in.push(s.saturating_duration_since(self.start).as_secs());
        }
        PodTimings {
            startup: Percentiles::of(&startup),
            to_schedule: Percentiles::of(&to_schedule),
            to_run: Percentiles::of(&to_run),
            throughput: scheduling::throughput(scheduled_in),
        }
    }
}

impl Drop for PodTracker {
    fn drop(&mut self) {
        self.watch.abort();
    }
}
