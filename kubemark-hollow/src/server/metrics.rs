//! What the kubelet's metrics and stats endpoints report, from the node's pod records and
//! their simulated usage: `/metrics/resource` (metrics-server), `/stats/summary`
//! (resource-usage collectors), `/metrics/cadvisor` and the kubelet's own `/metrics`.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{Response, header};
use serde_json::{Value, json};

use super::{Body, NodeServer, full};
use crate::pods::record::{Inner, POD_START_BUCKETS, PodRecord};
use crate::pods::usage::NODE_BASE;

/// A Prometheus text exposition answer.
pub(crate) fn exposition(text: String) -> Response<Body> {
    let mut response = Response::new(full(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A running container's numbers at one moment.
struct ContainerSample<'a> {
    pod: &'a PodRecord,
    name: &'a str,
    image: &'a str,
    started: SystemTime,
    cpu_seconds: f64,
    nano_cores: f64,
    memory: f64,
}

/// The node's numbers at one moment.
struct Sample<'a> {
    containers: Vec<ContainerSample<'a>>,
    node_cpu_seconds: f64,
    node_nano_cores: f64,
    node_memory: f64,
}

fn sample(inner: &Inner, born: SystemTime, now: SystemTime) -> Sample<'_> {
    let mut containers: Vec<ContainerSample<'_>> = Vec::new();
    let mut cpu_seconds = inner.retired_cpu_seconds;
    for pod in inner.pods.values() {
        cpu_seconds += pod.cpu_seconds(now);
        let Some(run) = pod.current.filter(|r| r.finished.is_none()) else {
            continue;
        };
        for c in pod.containers.iter() {
            containers.push(ContainerSample {
                pod,
                name: &c.name,
                image: &c.image,
                started: run.started,
                cpu_seconds: pod.container_cpu_seconds(c, now),
                nano_cores: c.usage.nano_cores(now),
                memory: c.usage.memory_bytes(now),
            });
        }
    }
    // As the kubelet's exposition: sorted by label values.
    containers.sort_by(|a, b| {
        (&*a.pod.namespace, &*a.pod.name, a.name).cmp(&(&*b.pod.namespace, &*b.pod.name, b.name))
    });
    let up = now.duration_since(born).unwrap_or_default();
    let node_cpu_seconds = cpu_seconds + NODE_BASE.cpu_millis.integral(up) / 1000.0;
    let node_nano_cores =
        NODE_BASE.cpu_millis.at(up) * 1e6 + containers.iter().map(|c| c.nano_cores).sum::<f64>();
    let node_memory =
        NODE_BASE.memory_bytes.at(up) + containers.iter().map(|c| c.memory).sum::<f64>();
    Sample {
        containers,
        node_cpu_seconds,
        node_nano_cores,
        node_memory,
    }
}

/// Pods with at least one running container, with their totals, in the samples' order.
fn pods<'a>(s: &'a Sample<'a>) -> Vec<(&'a PodRecord, f64, f64)> {
    let mut out: Vec<(&PodRecord, f64, f64)> = Vec::new();
    for c in &s.containers {
        match out.last_mut() {
            Some((p, cpu, mem)) if std::ptr::eq(*p, c.pod) => {
                *cpu += c.cpu_seconds;
                *mem += c.memory;
            }
            _ => out.push((c.pod, c.cpu_seconds, c.memory)),
        }
    }
    out
}

/// One metric family: its header, then a line per series (`labels`, value, timestamp in ms).
fn write_family(
    out: &mut String,
    (name, kind, help): (&str, &str, &str),
    series: impl IntoIterator<Item = (String, f64, Option<u128>)>,
) {
    family(out, name, kind, help);
    for (labels, value, ts) in series {
        let _ = match (labels.is_empty(), ts) {
            (true, Some(ts)) => writeln!(out, "{name} {value} {ts}"),
            (true, None) => writeln!(out, "{name} {value}"),
            (false, Some(ts)) => writeln!(out, "{name}{{{labels}}} {value} {ts}"),
            (false, None) => writeln!(out, "{name}{{{labels}}} {value}"),
        };
    }
}

fn pod_labels(p: &PodRecord) -> String {
    format!(
        "namespace=\"{}\",pod=\"{}\"",
        label(&p.namespace),
        label(&p.name)
    )
}

/// `/metrics/resource`, as metrics-server reads it.
pub(crate) fn resource(node: &NodeServer) -> Response<Body> {
    let now = SystemTime::now();
    let ts = Some(millis(now));
    let text = node.ctx.pods.with(|inner| {
        let s = sample(inner, node.ctx.pods.born, now);
        let mut out = String::new();
        let labels = |c: &ContainerSample<'_>| {
            format!("container=\"{}\",{}", label(c.name), pod_labels(c.pod))
        };
        let each = |value: fn(&ContainerSample<'_>) -> f64, ts| {
            s.containers.iter().map(move |c| (labels(c), value(c), ts))
        };
        write_family(
            &mut out,
            (
                "container_cpu_usage_seconds_total",
                "counter",
                "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
            ),
            each(|c| c.cpu_seconds, ts),
        );
        write_family(
            &mut out,
            (
                "container_memory_working_set_bytes",
                "gauge",
                "[STABLE] Current working set of the container in bytes",
            ),
            each(|c| c.memory.round(), ts),
        );
        write_family(
            &mut out,
            (
                "container_start_time_seconds",
                "gauge",
                "[STABLE] Start time of the container since unix epoch in seconds",
            ),
            each(|c| unix(c.started), None),
        );
        write_family(
            &mut out,
            (
                "node_cpu_usage_seconds_total",
                "counter",
                "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
            ),
            [(String::new(), s.node_cpu_seconds, ts)],
        );
        write_family(
            &mut out,
            (
                "node_memory_working_set_bytes",
                "gauge",
                "[STABLE] Current working set of the node in bytes",
            ),
            [(String::new(), s.node_memory.round(), ts)],
        );
        let pods = pods(&s);
        write_family(
            &mut out,
            (
                "pod_cpu_usage_seconds_total",
                "counter",
                "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
            ),
            pods.iter().map(|(p, cpu, _)| (pod_labels(p), *cpu, ts)),
        );
        write_family(
            &mut out,
            (
                "pod_memory_working_set_bytes",
                "gauge",
                "[STABLE] Current working set of the pod in bytes",
            ),
            pods.iter()
                .map(|(p, _, mem)| (pod_labels(p), mem.round(), ts)),
        );
        write_family(
            &mut out,
            (
                "resource_scrape_error",
                "gauge",
                "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
            ),
            [(String::new(), 0.0, None)],
        );
        out
    });
    exposition(text)
}

/// `/metrics/cadvisor`: the container families dashboards read, for the running containers.
pub(crate) fn cadvisor(node: &NodeServer) -> Response<Body> {
    let now = SystemTime::now();
    let ts = Some(millis(now));
    let text = node.ctx.pods.with(|inner| {
        let s = sample(inner, node.ctx.pods.born, now);
        let mut out = String::new();
        let labels = |c: &ContainerSample<'_>| {
            let id = crate::pods::status::container_id(&c.pod.uid, c.name, c.pod.restarts);
            format!(
                "container=\"{}\",image=\"{}\",name=\"{id}\",{}",
                label(c.name),
                label(c.image),
                pod_labels(c.pod)
            )
        };
        let each = |value: fn(&ContainerSample<'_>) -> f64| {
            s.containers.iter().map(move |c| (labels(c), value(c), ts))
        };
        write_family(
            &mut out,
            (
                "container_cpu_usage_seconds_total",
                "counter",
                "Cumulative cpu time consumed in seconds.",
            ),
            s.containers
                .iter()
                .map(|c| (format!("{},cpu=\"total\"", labels(c)), c.cpu_seconds, ts)),
        );
        for name in [
            "container_memory_usage_bytes",
            "container_memory_working_set_bytes",
        ] {
            write_family(
                &mut out,
                (name, "gauge", "Current memory usage in bytes."),
                each(|c| c.memory.round()),
            );
        }
        write_family(
            &mut out,
            (
                "container_start_time_seconds",
                "gauge",
                "Start time of the container since unix epoch in seconds.",
            ),
            each(|c| unix(c.started).floor()),
        );
        out
    });
    exposition(text)
}

/// The kubelet's own `/metrics`: the families clusterloader2 and dashboards read.
pub(crate) fn kubelet(node: &NodeServer) -> Response<Body> {
    let now = SystemTime::now();
    let uptime = now.duration_since(node.ctx.pods.born).unwrap_or_default();
    let text = node.ctx.pods.with(|inner| {
        let mut out = String::new();
        let running_pods = inner.pods.values().filter(|p| p.running()).count();
        let (mut running, mut exited, mut created) = (0, 0, 0);
        for p in inner.pods.values() {
            let n = p.containers.len();
            match p.current {
                Some(r) if r.finished.is_none() => running += n,
                Some(_) => exited += n,
                None => created += n,
            }
        }
        family(&mut out, "kubelet_node_name", "gauge", "[ALPHA] The node's name. The count is always 1.");
        let _ = writeln!(out, "kubelet_node_name{{node=\"{}\"}} 1", label(&node.ctx.name));
        family(&mut out, "kubelet_pod_start_duration_seconds", "histogram", "[ALPHA] Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run");
        let h = inner.pod_start.as_deref().cloned().unwrap_or_default();
        let mut cumulative = 0;
        for (bound, count) in POD_START_BUCKETS.iter().zip(h.counts.iter()) {
            cumulative += count;
            let _ = writeln!(out, "kubelet_pod_start_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total: u64 = h.counts.iter().sum();
        let _ = writeln!(out, "kubelet_pod_start_duration_seconds_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "kubelet_pod_start_duration_seconds_sum {}", h.sum);
        let _ = writeln!(out, "kubelet_pod_start_duration_seconds_count {total}");
        // The hollow runtime's PLEG relists every second and takes no time doing it.
        let relists = uptime.as_secs();
        for (name, help, le) in [
            ("kubelet_pleg_relist_duration_seconds", "[ALPHA] Duration in seconds for relisting pods in PLEG.", 0),
            ("kubelet_pleg_relist_interval_seconds", "[ALPHA] Interval in seconds between relisting in PLEG.", 7),
        ] {
            family(&mut out, name, "histogram", help);
            const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
            for (i, bound) in BUCKETS.iter().enumerate() {
                let count = if i >= le { relists } else { 0 };
                let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {relists}");
            let sum = if le == 0 { 0.0 } else { relists as f64 };
            let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {relists}");
        }
        family(&mut out, "kubelet_running_containers", "gauge", "[ALPHA] Number of containers currently running");
        for (state, n) in [("created", created), ("exited", exited), ("running", running)] {
            let _ = writeln!(out, "kubelet_running_containers{{container_state=\"{state}\"}} {n}");
        }
        family(&mut out, "kubelet_running_pods", "gauge", "[ALPHA] Number of pods that have a running pod sandbox");
        let _ = writeln!(out, "kubelet_running_pods {running_pods}");
        // client-go's request counter of the node's client (requests since it joined).
        let host = label(&node.shared.api_host);
        write_family(
            &mut out,
            ("rest_client_requests_total", "counter", "[ALPHA] Number of HTTP requests, partitioned by status code, method, and host."),
            node.ctx.requests.snapshot().into_iter().map(|(method, code, n)| {
                let code = if code == 0 { "<error>".to_string() } else { code.to_string() };
                (format!("code=\"{code}\",host=\"{host}\",method=\"{method}\""), n as f64, None)
            }),
        );
        out
    });
    exposition(text)
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `/stats/summary`.
pub(crate) fn summary(node: &NodeServer) -> Value {
    let now = SystemTime::now();
    let time = rfc3339(now);
    let capacity = |k: &str| {
        node.ctx
            .config
            .capacity
            .get(k)
            .and_then(|q| crate::quantity::parse(&q.0))
            // Clamped: JSON numbers here are u64 (a capacity of 100Ei does not fit).
            .map_or(0, |v| u64::try_from(v / 1000).unwrap_or(u64::MAX))
    };
    let memory_capacity = capacity("memory") as f64;
    let storage = capacity("ephemeral-storage");
    let fs = |used: u64| {
        json!({
            "time": time, "capacityBytes": storage, "availableBytes": storage.saturating_sub(used),
            "usedBytes": used, "inodes": 6_553_600, "inodesFree": 6_500_000, "inodesUsed": 53_600,
        })
    };
    let cpu = |nano_cores: f64, seconds: f64| json!({ "time": time, "usageNanoCores": nano_cores.round() as u64, "usageCoreNanoSeconds": (seconds * 1e9).round() as u64 });
    let memory = |bytes: f64| {
        let b = bytes.round() as u64;
        json!({
            "time": time, "availableBytes": (memory_capacity - bytes).max(0.0).round() as u64,
            "usageBytes": b, "workingSetBytes": b, "rssBytes": b, "pageFaults": 0, "majorPageFaults": 0,
        })
    };
    node.ctx.pods.with(|inner| {
        let s = sample(inner, node.ctx.pods.born, now);
        let pods: Vec<Value> = inner
            .pods
            .values()
            .map(|p| {
                let containers: Vec<Value> = s
                    .containers
                    .iter()
                    .filter(|c| std::ptr::eq(c.pod, p))
                    .map(|c| {
                        json!({
                            "name": c.name, "startTime": rfc3339(c.started),
                            "cpu": cpu(c.nano_cores, c.cpu_seconds), "memory": memory(c.memory),
                            "rootfs": fs(4096), "logs": fs(4096),
                        })
                    })
                    .collect();
                let ours = s.containers.iter().filter(|c| std::ptr::eq(c.pod, p));
                let (nc, cs, mem) = ours.fold((0.0, 0.0, 0.0), |(a, b, m), c| {
                    (a + c.nano_cores, b + c.cpu_seconds, m + c.memory)
                });
                json!({
                    "podRef": { "name": p.name, "namespace": p.namespace, "uid": p.uid },
                    "startTime": rfc3339(p.accepted),
                    "containers": containers,
                    "cpu": cpu(nc, cs), "memory": memory(mem),
                    "network": { "time": time, "name": "eth0", "rxBytes": 0, "rxErrors": 0, "txBytes": 0, "txErrors": 0 },
                    "volume": [],
                    "ephemeral-storage": fs(8192 * containers.len() as u64),
                    "process_stats": { "process_count": containers.len() },
                })
            })
            .collect();
        json!({
            "node": {
                "nodeName": node.ctx.name,
                "systemContainers": [
                    { "name": "kubelet", "startTime": rfc3339(node.ctx.pods.born), "cpu": cpu(0.0, 0.0), "memory": memory(0.0) },
                    { "name": "pods", "startTime": rfc3339(node.ctx.pods.born),
                      "cpu": cpu(s.containers.iter().map(|c| c.nano_cores).sum(), s.node_cpu_seconds),
                      "memory": memory(s.containers.iter().map(|c| c.memory).sum()) },
                ],
                "startTime": rfc3339(node.ctx.pods.born),
                "cpu": cpu(s.node_nano_cores, s.node_cpu_seconds),
                "memory": memory(s.node_memory),
                "network": { "time": time, "name": "eth0", "rxBytes": 0, "rxErrors": 0, "txBytes": 0, "txErrors": 0, "interfaces": [] },
                "fs": fs(4 << 30),
                "runtime": { "imageFs": fs(2 << 30), "containerFs": fs(2 << 30) },
                "rlimit": { "time": time, "maxpid": 4_194_304, "curproc": 100 + s.containers.len() },
            },
            "pods": pods,
        })
    })
}
