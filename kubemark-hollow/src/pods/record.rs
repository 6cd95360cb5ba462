//! What a node's kubelet API tells about its pods: which containers run since when, what they
//! use and what they wrote to their logs. The pod worker keeps it; the server reads it. Empty
//! (a map and a lock) while the node has no pods.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Pod;

use super::usage::{self, Usage, UsageError, UsageSpec};

/// Pod annotation: lines each of the pod's containers writes to its log after it starts
/// (separated by newlines), between the runtime's start and exit lines.
pub const LOG_ANNOTATION: &str = "kubemark.io/log";

/// One run of a pod's containers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    /// When the containers started.
    pub started: SystemTime,
    /// When they exited, and the exit code.
    pub finished: Option<(SystemTime, i32)>,
}

/// A container of a hollow pod.
#[derive(Debug, Clone)]
pub struct ContainerRecord {
    /// Container name.
    pub name: Box<str>,
    /// Image.
    pub image: Box<str>,
    /// Its default usage (from its requests), under the annotations.
    base: UsageSpec,
    /// What it uses.
    pub usage: Usage,
}

/// A hollow pod as its node's kubelet API shows it.
#[derive(Debug, Clone)]
pub struct PodRecord {
    /// Namespace.
    pub namespace: Box<str>,
    /// Name.
    pub name: Box<str>,
    /// UID.
    pub uid: Box<str>,
    /// When the kubelet accepted the pod.
    pub accepted: SystemTime,
    /// The app containers.
    pub containers: Box<[ContainerRecord]>,
    /// The containers' current run; `None` until they first start.
    pub current: Option<Run>,
    /// The run before it (`kubectl logs --previous`).
    pub previous: Option<Run>,
    /// Restarts so far.
    pub restarts: u32,
    /// What the containers write after they start (the [`LOG_ANNOTATION`]).
    pub log: Box<str>,
    /// The current run exited and the containers wait to restart (`CrashLoopBackOff`).
    pub restarting: bool,
}

impl PodRecord {
    /// A record of `pod`, not started yet; an annotation that does not parse is an error
    /// (the pod runs with its default usage).
    pub fn new(pod: &Pod, accepted: SystemTime) -> (Self, Option<UsageError>) {
        let containers = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .map(|c| {
                let requests = super::admission::container_requests(c);
                let base = UsageSpec::from_requests(
                    requests.get("cpu").map(|v| *v as f64),
                    requests.get("memory").map(|v| *v as f64 / 1000.0),
                );
                ContainerRecord {
                    name: c.name.as_str().into(),
                    image: c.image.as_deref().unwrap_or_default().into(),
                    base,
                    usage: Usage::new(base, accepted),
                }
            })
            .collect();
        let mut record = PodRecord {
            namespace: pod
                .metadata
                .namespace
                .as_deref()
                .unwrap_or("default")
                .into(),
            name: pod.metadata.name.as_deref().unwrap_or_default().into(),
            uid: pod.metadata.uid.as_deref().unwrap_or_default().into(),
            accepted,
            containers,
            current: None,
            previous: None,
            restarts: 0,
            log: "".into(),
            restarting: false,
        };
        let error = record.annotate(pod, accepted).err();
        (record, error)
    }

    /// Takes the usage and log annotations of `pod` (changed or not) from `now` on. On an
    /// error the containers keep what they had.
    pub fn annotate(&mut self, pod: &Pod, now: SystemTime) -> Result<(), UsageError> {
        let annotations = pod.metadata.annotations.as_ref();
        let get = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
        self.log = get(LOG_ANNOTATION).unwrap_or_default().into();
        let mut specs = Vec::with_capacity(self.containers.len());
        for c in self.containers.iter() {
            let mut spec = c.base;
            if let Some(v) = get(usage::USAGE_ANNOTATION) {
                spec = usage::parse(usage::USAGE_ANNOTATION, v, spec)?;
            }
            let own = format!("{}.{}", usage::USAGE_ANNOTATION, c.name);
            if let Some(v) = get(&own) {
                spec = usage::parse(&own, v, spec)?;
            }
            specs.push(spec);
        }
        // An exited container used nothing since it exited.
        let at = match self.current.and_then(|r| r.finished) {
            Some((t, _)) => t.min(now),
            None => now,
        };
        for (c, spec) in self.containers.iter_mut().zip(specs) {
            c.usage.change(spec, at);
        }
        Ok(())
    }

    /// The containers (re)start at `now`.
    pub fn start(&mut self, now: SystemTime) {
        if let Some(run) = self.current.take() {
            self.previous = Some(run);
            self.restarts += 1;
        }
        self.restarting = false;
        self.current = Some(Run {
            started: now,
            finished: None,
        });
        for c in self.containers.iter_mut() {
            let spec = c.usage.spec();
            c.usage = Usage::new(spec, now);
        }
    }

    /// The containers exit at `now` with `code`, to be restarted or not.
    pub fn exit(&mut self, now: SystemTime, code: i32, restarting: bool) {
        if let Some(run) = self.current.as_mut().filter(|r| r.finished.is_none()) {
            run.finished = Some((now, code));
            self.restarting = restarting;
        }
    }

    /// The run `kubectl logs --previous` shows: while the containers wait to restart, the one
    /// that just exited (as the kubelet shows the last terminated container); else the one
    /// before the current.
    pub fn previous_run(&self) -> Option<Run> {
        if self.restarting {
            self.current
        } else {
            self.previous
        }
    }

    /// Whether the containers run now.
    pub fn running(&self) -> bool {
        self.current.is_some_and(|r| r.finished.is_none())
    }

    /// The CPU seconds container `c` of the current run used up to `now` (or its exit).
    pub fn container_cpu_seconds(&self, c: &ContainerRecord, now: SystemTime) -> f64 {
        match self.current {
            None => 0.0,
            Some(run) => c
                .usage
                .cpu_seconds(run.finished.map_or(now, |(t, _)| t.min(now))),
        }
    }

    /// The CPU seconds the current run's containers used up to `now`.
    pub fn cpu_seconds(&self, now: SystemTime) -> f64 {
        self.containers
            .iter()
            .map(|c| self.container_cpu_seconds(c, now))
            .sum()
    }
}

/// Buckets of `kubelet_pod_start_duration_seconds`, as the kubelet's.
pub const POD_START_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// A histogram of observations in [`POD_START_BUCKETS`] (cumulative counts are made when read).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Observations per bucket, the last for +Inf.
    pub counts: [u64; POD_START_BUCKETS.len() + 1],
    /// Sum of observations.
    pub sum: f64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        let i = POD_START_BUCKETS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(POD_START_BUCKETS.len());
        self.counts[i] += 1;
        self.sum += v;
    }
}

/// The pods of one node, by UID, and what the node's counters need of pods that are gone.
#[derive(Debug)]
pub struct PodRecords {
    /// When the node started.
    pub born: SystemTime,
    inner: Mutex<Inner>,
}

/// What [`PodRecords`] guards.
#[derive(Debug, Default)]
pub struct Inner {
    /// The pods, by UID.
    pub pods: HashMap<Box<str>, PodRecord>,
    /// CPU seconds of container runs that ended and are no longer counted in `pods`.
    pub retired_cpu_seconds: f64,
    /// Time from a pod's acceptance to its containers' first start, seconds; made on first use.
    pub pod_start: Option<Box<Histogram>>,
}

impl PodRecords {
    /// Records of a node started now.
    pub fn new() -> Self {
        PodRecords {
            born: SystemTime::now(),
            inner: Mutex::default(),
        }
    }

    /// Runs `f` on the records.
    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inner)
    }

    /// Adds a pod.
    pub fn insert(&self, record: PodRecord) {
        self.with(|i| i.pods.insert(record.uid.clone(), record));
    }

    /// Runs `f` on the record of pod `uid`, if there is one.
    pub fn update(&self, uid: &str, f: impl FnOnce(&mut PodRecord)) {
        self.with(|i| {
            if let Some(p) = i.pods.get_mut(uid) {
                f(p);
            }
        });
    }

    /// The containers of pod `uid` (re)start at `now`.
    pub fn start(&self, uid: &str, now: SystemTime) {
        self.with(|i| {
            let Some(p) = i.pods.get_mut(uid) else { return };
            if p.current.is_none() {
                let took = now.duration_since(p.accepted).unwrap_or_default();
                i.pod_start
                    .get_or_insert_with(Default::default)
                    .observe(took.as_secs_f64());
            } else {
                i.retired_cpu_seconds += p.cpu_seconds(now);
            }
            p.start(now);
        });
    }

    /// Forgets pod `uid`.
    pub fn remove(&self, uid: &str, now: SystemTime) {
        self.with(|i| {
            if let Some(p) = i.pods.remove(uid) {
                i.retired_cpu_seconds += p.cpu_seconds(now);
            }
        });
    }

    /// The current run of pod `namespace/name`'s containers (what a followed log watches).
    pub fn current_run(&self, namespace: &str, name: &str) -> Option<Run> {
        self.with(|i| {
            i.pods
                .values()
                .find(|p| &*p.namespace == namespace && &*p.name == name)
                .and_then(|p| p.current)
        })
    }

    /// Pod `uid`'s containers have run since `started` (found running after a restart of this
    /// process): not a pod start to count.
    pub fn adopt(&self, uid: &str, started: SystemTime) {
        self.update(uid, |p| p.start(started));
    }

    /// The record of pod `namespace/name`, copied.
    pub fn find(&self, namespace: &str, name: &str) -> Option<PodRecord> {
        self.with(|i| {
            i.pods
                .values()
                .find(|p| &*p.namespace == namespace && &*p.name == name)
                .cloned()
        })
    }
}

impl Default for PodRecords {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pod(annotations: &[(&str, &str)]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "p", "namespace": "ns", "uid": "u1",
                "annotations": annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>() },
            "spec": { "containers": [
                { "name": "web", "image": "nginx", "resources": { "requests": { "cpu": "200m", "memory": "100Mi" } } },
                { "name": "side", "image": "busybox" },
            ] },
        }))
        .unwrap()
    }

    #[test]
    fn annotations_set_usage_per_pod_and_per_container() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let (r, e) = PodRecord::new(&pod(&[]), t);
        assert!(e.is_none());
        assert_eq!(r.containers[0].usage.nano_cores(t), 100e6);
        assert_eq!(
            r.containers[0].usage.memory_bytes(t),
            50.0 * 1024.0 * 1024.0
        );
        assert_eq!(r.containers[1].usage.nano_cores(t), 1e6);

        let p = pod(&[
            ("kubemark.io/usage", "cpu=300m"),
            ("kubemark.io/usage.side", "memory=1Gi"),
        ]);
        let (r, e) = PodRecord::new(&p, t);
        assert!(e.is_none());
        assert_eq!(r.containers[0].usage.nano_cores(t), 300e6);
        assert_eq!(r.containers[1].usage.nano_cores(t), 300e6);
        assert_eq!(
            r.containers[1].usage.memory_bytes(t),
            1024.0 * 1024.0 * 1024.0
        );

        let (r, e) = PodRecord::new(&pod(&[("kubemark.io/usage", "cpu=lots")]), t);
        assert!(e.unwrap().to_string().contains("cpu=lots"));
        assert_eq!(r.containers[0].usage.nano_cores(t), 100e6);
    }

    #[test]
    fn a_restart_keeps_the_previous_run() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let (mut r, _) = PodRecord::new(&pod(&[]), t);
        assert!(!r.running());
        r.start(t);
        assert!(r.running());
        r.exit(t + Duration::from_secs(5), 3, true);
        assert_eq!(r.previous_run(), r.current);
        r.start(t + Duration::from_secs(15));
        assert_eq!(r.previous_run(), r.previous);
        assert_eq!(r.restarts, 1);
        assert_eq!(
            r.previous.unwrap().finished,
            Some((t + Duration::from_secs(5), 3))
        );
        assert!(r.running());
        // The new container's CPU counter starts from zero.
        assert_eq!(
            r.containers[0]
                .usage
                .cpu_seconds(t + Duration::from_secs(15)),
            0.0
        );
    }
}
