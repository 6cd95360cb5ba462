//! API responsiveness from the API server's own histograms, as ClusterLoader2's
//! `APIResponsivenessPrometheusSimple` computes it: the p99 of `apiserver_request_duration_seconds`
//! per (verb, resource, subresource, scope) over the test, from the difference of two scrapes.

use std::collections::BTreeMap;

use super::prometheus::{Buckets, histograms, quantile};
use super::report::ApiCall;

/// A call kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CallKind {
    /// HTTP verb as the API server labels it (GET, LIST, POST, PATCH, ...).
    pub verb: String,
    /// Resource.
    pub resource: String,
    /// Subresource, often empty.
    pub subresource: String,
    /// `resource`, `namespace` or `cluster`.
    pub scope: String,
}

/// Parses the `apiserver_request_duration_seconds_bucket` series of a scrape.
pub fn parse(text: &str) -> BTreeMap<CallKind, Buckets> {
    histograms(
        text,
        "apiserver_request_duration_seconds",
        &["verb", "resource", "subresource", "scope"],
    )
    .into_iter()
    .map(|(l, b)| {
        let [verb, resource, subresource, scope] = <[String; 4]>::try_from(l).expect("4 labels");
        (
            CallKind {
                verb,
                resource,
                subresource,
                scope,
            },
            b,
        )
    })
    .filter(|(k, _)| !matches!(k.verb.as_str(), "WATCH" | "CONNECT") && !k.resource.is_empty())
    .collect()
}

/// The p99 latency of each call kind made between two scrapes of the API server, slowest first.
pub fn api_calls(before: &str, after: &str) -> Vec<ApiCall> {
    let before = parse(before);
    let mut calls: Vec<ApiCall> = parse(after)
        .iter()
        .filter_map(|(kind, buckets)| {
            let (p99, count) = quantile(before.get(kind), buckets, 0.99)?;
            Some(ApiCall {
                verb: kind.verb.clone(),
                resource: kind.resource.clone(),
                subresource: kind.subresource.clone(),
                scope: kind.scope.clone(),
                p99_seconds: p99,
                count,
            })
        })
        .collect();
    calls.sort_by(|a, b| b.p99_seconds.total_cmp(&a.p99_seconds));
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="POST",version="v1",le="0.05"} 90
apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="POST",version="v1",le="0.1"} 99
apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="POST",version="v1",le="+Inf"} 100
apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1",le="+Inf"} 7
"#;

    #[test]
    fn p99_interpolates_inside_the_bucket_and_skips_watches() {
        let after = parse(SCRAPE);
        assert_eq!(after.len(), 1, "WATCH is not a call with a latency SLO");
        let (kind, buckets) = after.iter().next().unwrap();
        assert_eq!(
            (kind.verb.as_str(), kind.scope.as_str()),
            ("POST", "namespace")
        );
        let (p99, n) = quantile(None, buckets, 0.99).unwrap();
        assert_eq!(n, 100.0);
        assert!((p99 - 0.1).abs() < 1e-9, "{p99}");
        let (p50, _) = quantile(None, buckets, 0.5).unwrap();
        assert!(p50 > 0.0 && p50 < 0.05, "{p50}");
        let same = quantile(Some(buckets), buckets, 0.99);
        assert_eq!(same, None, "no calls between identical scrapes");
    }
}
