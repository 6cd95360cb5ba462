//! etcd over a run: the API server's view (`etcd_request_duration_seconds`,
//! `apiserver_storage_size_bytes`), available on any cluster, and etcd's own metrics (WAL fsync,
//! backend commit, db size), scraped directly when the master is local.

use crate::master::LocalState;

use super::prometheus::{gauge_max, histograms, quantile};
use super::report::{EtcdMetrics, EtcdRequest};

/// The metrics text at one instant.
pub struct Snapshot {
    apiserver: String,
    etcd: Option<String>,
}

impl Snapshot {
    /// `apiserver` is a `/metrics` scrape of the API server taken at the same time.
    pub async fn take(apiserver: String, local: Option<&LocalState>) -> Self {
        let etcd = match local {
            Some(l) => match l.etcd_metrics().await {
                Ok(text) => Some(text),
                Err(e) => {
                    tracing::warn!(error = %e, "could not scrape etcd; reporting the API server's view only");
                    None
                }
            },
            None => None,
        };
        Self { apiserver, etcd }
    }

    /// The API server's scrape.
    pub fn apiserver_text(&self) -> &str {
        &self.apiserver
    }
}

const REQUESTS: &str = "etcd_request_duration_seconds";

/// What changed between two snapshots.
pub fn summarize(before: &Snapshot, after: &Snapshot) -> EtcdMetrics {
    let by = ["operation", "group", "resource"];
    let earlier = histograms(&before.apiserver, REQUESTS, &by);
    let mut requests: Vec<EtcdRequest> = histograms(&after.apiserver, REQUESTS, &by)
        .into_iter()
        .filter_map(|(key, buckets)| {
            let (p99, count) = quantile(earlier.get(&key), &buckets, 0.99)?;
            let [operation, group, resource] = <[String; 3]>::try_from(key).ok()?;
            Some(EtcdRequest {
                operation,
                group,
                resource,
                p99_seconds: p99,
                count,
            })
        })
        .collect();
    requests.sort_by(|a, b| b.p99_seconds.total_cmp(&a.p99_seconds));
    let etcd_p99 = |metric: &str| -> Option<f64> {
        let (b, a) = (before.etcd.as_deref()?, after.etcd.as_deref()?);
        let key: Vec<String> = Vec::new();
        let a = histograms(a, metric, &[]).remove(&key)?;
        let b = histograms(b, metric, &[]).remove(&key);
        quantile(b.as_ref(), &a, 0.99).map(|(p99, _)| p99)
    };
    let from_etcd = after
        .etcd
        .as_deref()
        .and_then(|t| gauge_max(t, "etcd_mvcc_db_total_size_in_bytes"));
    let db_size_bytes = from_etcd
        .or_else(|| gauge_max(&after.apiserver, "apiserver_storage_size_bytes"))
        .unwrap_or(0.0);
    EtcdMetrics {
        requests,
        db_size_bytes,
        wal_fsync_p99_seconds: etcd_p99("etcd_disk_wal_fsync_duration_seconds"),
        backend_commit_p99_seconds: etcd_p99("etcd_disk_backend_commit_duration_seconds"),
        source: if after.etcd.is_some() {
            "apiserver+etcd".into()
        } else {
            "apiserver".into()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_between_snapshots_and_etcd_preferred_for_db_size() {
        let before = Snapshot {
            apiserver: r#"etcd_request_duration_seconds_bucket{group="",operation="create",resource="pods",le="0.005"} 10
etcd_request_duration_seconds_bucket{group="",operation="create",resource="pods",le="0.025"} 10
etcd_request_duration_seconds_bucket{group="",operation="create",resource="pods",le="+Inf"} 10
"#
            .into(),
            etcd: Some("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 5\netcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 5\netcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 5\n".into()),
        };
        let after = Snapshot {
            apiserver: r#"etcd_request_duration_seconds_bucket{group="",operation="create",resource="pods",le="0.005"} 10
etcd_request_duration_seconds_bucket{group="",operation="create",resource="pods",le="0.025"} 110
etcd_request_duration_seconds_bucket{group="",operation="create",resource="pods",le="+Inf"} 110
apiserver_storage_size_bytes{storage_cluster_id="x"} 1000
"#
            .into(),
            etcd: Some("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 5\netcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 105\netcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 105\netcd_mvcc_db_total_size_in_bytes 4096\n".into()),
        };
        let m = summarize(&before, &after);
        assert_eq!(m.requests.len(), 1);
        assert_eq!(m.requests[0].count, 100.0, "only the calls of the run");
        assert!(m.requests[0].p99_seconds > 0.005 && m.requests[0].p99_seconds <= 0.025);
        let fsync = m.wal_fsync_p99_seconds.expect("etcd scraped");
        assert!(fsync > 0.001 && fsync <= 0.002, "{fsync}");
        assert_eq!(m.db_size_bytes, 4096.0);
        assert_eq!(m.source, "apiserver+etcd");
        let remote = summarize(
            &Snapshot {
                apiserver: before.apiserver.clone(),
                etcd: None,
            },
            &Snapshot {
                apiserver: after.apiserver.clone(),
                etcd: None,
            },
        );
        assert_eq!(
            (remote.db_size_bytes, remote.wal_fsync_p99_seconds),
            (1000.0, None)
        );
    }
}
