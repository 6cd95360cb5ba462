//! The static HTML dashboard: one self-contained file (runs embedded as JSON, plots drawn as SVG
//! by inline script, no network) that shows one run or compares several side by side.

use std::path::{Path, PathBuf};

use super::report::TestRun;

const TEMPLATE: &str = include_str!("dashboard.html");
const PLACEHOLDER: &str = "/*KUBEMARK_RUNS*/";

/// Why a dashboard could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{action} {}", path.display())]
    Io {
        /// `reading` or `writing`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a run report.
    #[error("{} is not a kubemark TestRun (v1alpha1) report", path.display())]
    NotAReport {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// No report was given.
    #[error("no reports given")]
    NoReports,
    /// The runs could not be serialized.
    #[error("serializing the runs")]
    Json(#[from] serde_json::Error),
}

/// Renders `runs` into the dashboard.
pub fn render(runs: &[TestRun]) -> Result<String, ReportError> {
    // Inside a <script> element only "</" could end it early; JSON never needs it unescaped.
    let data = serde_json::to_string(runs)?.replace("</", "<\\/");
    Ok(TEMPLATE.replacen(PLACEHOLDER, &data, 1))
}

/// Reads a run artifact (the JSON of a [`TestRun`]).
pub fn read(path: &Path) -> Result<TestRun, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ReportError::NotAReport {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads run artifacts and writes the dashboard comparing them to `out`.
pub fn write(reports: &[PathBuf], out: &Path) -> Result<(), ReportError> {
    let runs = reports
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    if runs.is_empty() {
        return Err(ReportError::NoReports);
    }
    std::fs::write(out, render(&runs)?).map_err(|source| ReportError::Io {
        action: "writing",
        path: out.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_template_has_exactly_one_placeholder() {
        assert_eq!(super::TEMPLATE.matches(super::PLACEHOLDER).count(), 1);
    }

    #[test]
    fn a_file_that_is_not_a_report_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::fs::write(&path, "{}").unwrap();
        let e = super::write(&[path], &dir.path().join("out.html")).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("x.json is not a kubemark TestRun (v1alpha1) report"),
            "{e}"
        );
        assert!(matches!(
            super::write(&[], &dir.path().join("o.html")),
            Err(super::ReportError::NoReports)
        ));
    }
}
