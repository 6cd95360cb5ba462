//! What can go wrong while measuring a run.

/// An error of the measurements.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeasurementError {
    /// The API server's `/metrics` could not be read.
    #[error("scraping the API server's /metrics")]
    Scrape(#[source] kube::Error),
    /// A request could not be built.
    #[error("building a request: {0}")]
    Request(#[from] http::Error),
}
