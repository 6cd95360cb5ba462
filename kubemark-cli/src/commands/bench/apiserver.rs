//! The API server's view of a measurement: request counts by kind, by API priority level, open
//! watches, from its `/metrics`.

use std::collections::BTreeMap;

/// The API server's `/metrics` (Prometheus text).
pub async fn metrics(client: &kube::Client) -> anyhow::Result<String> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    Ok(client.request_text(req).await?)
}

/// Sums the samples of the Prometheus series `metric` by a key made from each sample's labels;
/// samples for which `key` gives `None` are left out.
fn sum_by(
    text: &str,
    metric: &str,
    key: impl Fn(&dyn Fn(&str) -> String) -> Option<String>,
) -> BTreeMap<String, f64> {
    let prefix = format!("{metric}{{");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let label =
            |name: &str| kubemark_core::measurement::prometheus::label(labels, name).to_string();
        if let Some(k) = key(&label) {
            *out.entry(k).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    out
}

/// Open WATCH requests by resource, from `apiserver_longrunning_requests`.
pub fn watches(text: &str) -> BTreeMap<String, f64> {
    sum_by(text, "apiserver_longrunning_requests", |label| {
        (label("verb") == "WATCH").then(|| label("resource"))
    })
}

/// `apiserver_flowcontrol_dispatched_requests_total` by "priority level (flow schema)".
pub fn dispatched_by_priority(text: &str) -> BTreeMap<String, f64> {
    sum_by(
        text,
        "apiserver_flowcontrol_dispatched_requests_total",
        |label| {
            Some(format!(
                "{} ({})",
                label("priority_level"),
                label("flow_schema")
            ))
        },
    )
}

/// `apiserver_request_total` by "VERB resource[/subresource]".
pub fn request_counts(text: &str) -> BTreeMap<String, f64> {
    tally(text, false)
}

/// The failed part of `apiserver_request_total` (codes from 400) by "VERB resource[/subresource]
/// code": a 403 the Node authorizer gave before its graph knew a pod, a 409 of a stale write.
pub fn failed_counts(text: &str) -> BTreeMap<String, f64> {
    tally(text, true)
}

fn tally(text: &str, failed: bool) -> BTreeMap<String, f64> {
    sum_by(text, "apiserver_request_total", |label| {
        let (verb, resource, sub) = (label("verb"), label("resource"), label("subresource"));
        let key = if sub.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{sub}")
        };
        if !failed {
            return Some(key);
        }
        let code = label("code");
        code.parse::<u16>()
            .is_ok_and(|c| c >= 400)
            .then(|| format!("{key} {code}"))
    })
}

/// The requests served between two `request_counts`, by "VERB resource", where there were any.
pub fn request_deltas(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let delta = v - before.get(k).copied().unwrap_or(0.0);
            (delta > 0.0).then(|| (k.clone(), delta))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = r#"# HELP apiserver_request_total x
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="serviceaccounts",scope="resource",subresource="token",verb="POST",version="v1"} 7
apiserver_request_total{code="403",component="apiserver",dry_run="",group="",resource="serviceaccounts",scope="resource",subresource="token",verb="POST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 5
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 1
"#;

    #[test]
    fn requests_are_counted_by_priority_level_and_flow_schema() {
        let text = r#"# TYPE apiserver_flowcontrol_dispatched_requests_total counter
apiserver_flowcontrol_dispatched_requests_total{flow_schema="system-node-high",priority_level="node-high"} 600
apiserver_flowcontrol_dispatched_requests_total{flow_schema="exempt",priority_level="exempt"} 40
apiserver_flowcontrol_rejected_requests_total{flow_schema="system-node-high",priority_level="node-high",reason="queue-full"} 9
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 600
"#;
        let levels = dispatched_by_priority(text);
        assert_eq!(levels.len(), 2, "{levels:?}");
        assert_eq!(levels["node-high (system-node-high)"], 600.0);
        assert_eq!(levels["exempt (exempt)"], 40.0);
    }

    #[test]
    fn open_watches_are_counted_by_resource() {
        let text = r#"apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 1000
apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 3
apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="resource",subresource="log",verb="CONNECT",version="v1"} 2
apiserver_longrunning_requests_total{resource="nodes",verb="WATCH"} 9
"#;
        let open = watches(text);
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open["pods"], 1003.0);
    }

    #[test]
    fn failures_are_counted_apart_by_code_and_within_the_totals() {
        let all = request_counts(METRICS);
        assert_eq!(all["POST serviceaccounts/token"], 10.0);
        assert_eq!(all["GET pods"], 6.0);
        let failed = failed_counts(METRICS);
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert_eq!(failed["POST serviceaccounts/token 403"], 3.0);
        assert_eq!(failed["GET pods 409"], 1.0);
    }
}
