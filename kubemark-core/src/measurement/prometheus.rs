//! The Prometheus text format as the API server and etcd serve it: a scrape of the API server's
//! `/metrics`, label values, histograms summed by labels, gauges, and quantiles between two
//! scrapes as Prometheus' `histogram_quantile` computes them.

use std::collections::BTreeMap;

use super::error::MeasurementError;

/// Cumulative bucket counts by upper bound, for one series.
pub type Buckets = BTreeMap<String, f64>;

/// The API server's `/metrics`.
pub async fn scrape(client: &kube::Client) -> Result<String, MeasurementError> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    client
        .request_text(req)
        .await
        .map_err(MeasurementError::Scrape)
}

/// The value of label `name` in a Prometheus series' `{...}` part.
pub fn label<'a>(labels: &'a str, name: &str) -> &'a str {
    let key = format!("{name}=\"");
    labels
        .split(&key)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
}

/// The buckets of histogram `metric`, summed over every label but `by` and keyed by the values
/// of `by` (in that order).
pub fn histograms(text: &str, metric: &str, by: &[&str]) -> BTreeMap<Vec<String>, Buckets> {
    let prefix = format!("{metric}_bucket{{");
    let mut out: BTreeMap<Vec<String>, Buckets> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let key = by.iter().map(|n| label(labels, n).to_string()).collect();
        let le = label(labels, "le").to_string();
        *out.entry(key).or_default().entry(le).or_insert(0.0) +=
            value.parse::<f64>().unwrap_or(0.0);
    }
    out
}

/// The largest value of any series of gauge `metric`, if the scrape has one.
pub fn gauge_max(text: &str, metric: &str) -> Option<f64> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .reduce(f64::max)
}

fn bound(le: &str) -> f64 {
    if le == "+Inf" {
        f64::INFINITY
    } else {
        le.parse().unwrap_or(f64::INFINITY)
    }
}

/// The `q` quantile (0..1) of the calls between two scrapes, by linear interpolation inside the
/// bucket as Prometheus' `histogram_quantile` does; `None` without calls.
pub fn quantile(before: Option<&Buckets>, after: &Buckets, q: f64) -> Option<(f64, f64)> {
    let mut buckets: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, v)| {
            (
                bound(le),
                v - before.and_then(|b| b.get(le)).copied().unwrap_or(0.0),
            )
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev_bound = 0.0;
    let mut prev_count = 0.0;
    for (upper, count) in &buckets {
        if *count >= rank {
            if upper.is_infinite() {
                return Some((prev_bound, total));
            }
            let in_bucket = count - prev_count;
            let frac = if in_bucket > 0.0 {
                (rank - prev_count) / in_bucket
            } else {
                1.0
            };
            return Some((prev_bound + (upper - prev_bound) * frac, total));
        }
        prev_bound = *upper;
        prev_count = *count;
    }
    Some((prev_bound, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_group_by_the_named_labels_and_gauges_take_the_largest_series() {
        let text = r#"etcd_request_duration_seconds_bucket{group="",operation="get",resource="pods",le="0.005"} 3
etcd_request_duration_seconds_bucket{group="",operation="get",resource="pods",le="+Inf"} 4
etcd_request_duration_seconds_bucket{group="apps",operation="get",resource="pods",le="+Inf"} 1
apiserver_storage_size_bytes{storage_cluster_id="a"} 1.5e+06
apiserver_storage_size_bytes{storage_cluster_id="b"} 2e+06
apiserver_storage_size_bytes_other 9e+09
"#;
        let h = histograms(
            text,
            "etcd_request_duration_seconds",
            &["operation", "resource"],
        );
        let key = vec!["get".to_string(), "pods".to_string()];
        assert_eq!(h.len(), 1);
        assert_eq!(h[&key]["+Inf"], 5.0, "the two groups are summed");
        assert_eq!(h[&key]["0.005"], 3.0);
        assert_eq!(gauge_max(text, "apiserver_storage_size_bytes"), Some(2e6));
        assert_eq!(gauge_max(text, "etcd_mvcc_db_total_size_in_bytes"), None);
    }
}
