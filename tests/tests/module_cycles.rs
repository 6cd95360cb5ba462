//! No import cycles between the modules of a crate (`kubemark_tests::modules`): each crate
//! listed here is checked on every test run.

use std::path::Path;

#[test]
fn the_crates_modules_depend_on_each_other_without_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crates = [
        "kubemark-cli",
        "kubemark-core",
        "kubemark-hollow",
        "kubemark-provider-aws",
        "kubemark-provider-gce",
        "kubemark-provider-preexisting",
        "tests",
    ];
    let found: Vec<String> = crates
        .iter()
        .flat_map(|c| {
            kubemark_tests::modules::cycles(&root.join(c).join("src"))
                .into_iter()
                .map(move |cycle| format!("{c}: {cycle}"))
        })
        .collect();
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}
