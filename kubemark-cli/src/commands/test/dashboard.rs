//! The static HTML dashboard: one self-contained file (runs embedded as JSON, plots drawn as SVG
//! by inline script, no network) that shows one run or compares several side by side.

use std::path::Path;

use anyhow::Context;

use super::report::TestRun;

const TEMPLATE: &str = include_str!("dashboard.html");
const PLACEHOLDER: &str = "/*KUBEMARK_RUNS*/";

/// Renders `runs` into the dashboard.
pub fn render(runs: &[TestRun]) -> anyhow::Result<String> {
    // Inside a <script> element only "</" could end it early; JSON never needs it unescaped.
    let data = serde_json::to_string(runs)?.replace("</", "<\\/");
    Ok(TEMPLATE.replacen(PLACEHOLDER, &data, 1))
}

/// Reads run artifacts and writes the dashboard to `out`.
pub fn write(reports: &[std::path::PathBuf], out: &Path) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for path in reports {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let run: TestRun = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a kubemark TestRun (v1alpha1) report",
                path.display()
            )
        })?;
        runs.push(run);
    }
    anyhow::ensure!(!runs.is_empty(), "no reports given");
    std::fs::write(out, render(&runs)?).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_template_has_exactly_one_placeholder() {
        assert_eq!(super::TEMPLATE.matches(super::PLACEHOLDER).count(), 1);
    }
}
