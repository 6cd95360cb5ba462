//! Finding the `hollow-node` binary (kubemark-hollow) that runs hollow nodes: local clusters
//! and the bench spawn it, `kubemark image` packs it.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Environment variable: the `hollow-node` binary to run, over any other.
pub const ENV: &str = "KUBEMARK_HOLLOW_NODE_BIN";

/// The binary's file name.
pub const NAME: &str = "hollow-node";

/// The `hollow-node` to run: `$KUBEMARK_HOLLOW_NODE_BIN` when set, else the one next to this
/// `kubemark` (where `cargo build` and `cargo install` put both), else the first on `PATH`.
pub fn locate() -> anyhow::Result<PathBuf> {
    locate_from(
        std::env::var_os(ENV),
        std::env::current_exe().ok(),
        std::env::var_os("PATH"),
    )
}

fn locate_from(
    given: Option<OsString>,
    exe: Option<PathBuf>,
    path: Option<OsString>,
) -> anyhow::Result<PathBuf> {
    if let Some(given) = given.filter(|g| !g.is_empty()) {
        let given = PathBuf::from(given);
        if is_executable(&given) {
            return Ok(given);
        }
        anyhow::bail!(
            "{ENV}={} is not an executable file; {}",
            given.display(),
            HOW_TO_GET
        );
    }
    let sibling = exe
        .as_deref()
        .and_then(Path::parent)
        .map(|dir| dir.join(NAME));
    if let Some(s) = sibling.as_ref().filter(|s| is_executable(s)) {
        return Ok(s.clone());
    }
    if let Some(found) = path
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(NAME))
        .find(|p| is_executable(p))
    {
        return Ok(found);
    }
    let sibling = sibling.map_or_else(|| "next to kubemark".into(), |s| s.display().to_string());
    anyhow::bail!(
        "no {NAME} binary: {ENV} is unset, none at {sibling} and none on PATH; {HOW_TO_GET}"
    )
}

const HOW_TO_GET: &str = "build it with `cargo build --release -p kubemark-hollow` (it lands next to kubemark in target/release) or install it with `cargo install kubemark-hollow`, or point KUBEMARK_HOLLOW_NODE_BIN at it";

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn the_override_wins_then_the_sibling_then_path() {
        let tmp = tempfile::tempdir().unwrap();
        let (bin, on_path, other) = (
            tmp.path().join("bin"),
            tmp.path().join("path"),
            tmp.path().join("other"),
        );
        for d in [&bin, &on_path, &other] {
            std::fs::create_dir(d).unwrap();
        }
        let exe = file(&bin, "kubemark", 0o755);
        let in_path = file(&on_path, NAME, 0o755);
        let path = std::env::join_paths([&other, &on_path]).unwrap();
        let found = locate_from(None, Some(exe.clone()), Some(path.clone())).unwrap();
        assert_eq!(found, in_path, "PATH when there is no sibling");
        let sibling = file(&bin, NAME, 0o755);
        let found = locate_from(None, Some(exe.clone()), Some(path.clone())).unwrap();
        assert_eq!(found, sibling, "the sibling before PATH");
        let given = file(&other, "my-hollow-node", 0o755);
        let found = locate_from(Some(given.clone().into()), Some(exe), Some(path)).unwrap();
        assert_eq!(found, given, "the override before both");
    }

    #[test]
    fn a_missing_binary_is_one_line_naming_where_it_looked_and_how_to_get_it() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = file(tmp.path(), "kubemark", 0o755);
        // Not executable: not taken.
        file(tmp.path(), NAME, 0o644);
        let e = locate_from(None, Some(exe), Some(OsString::new()))
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.contains(&tmp.path().join(NAME).display().to_string())
                && e.contains("PATH")
                && e.contains(ENV)
                && e.contains("cargo install kubemark-hollow"),
            "{e}"
        );
        let e = locate_from(Some("/nonexistent/hollow-node".into()), None, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{ENV}=/nonexistent/hollow-node is not")),
            "{e}"
        );
    }
}
