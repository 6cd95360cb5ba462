//! Import cycles between the modules of a crate, from its sources. A module (one file) depends
//! on another when it names it by a `crate::`, `super::` or `self::` path, in `use` or in code;
//! paths through a re-export count as a dependency on the re-exporting module, and test code
//! (`#[cfg(test)]` items and modules) is left out. The modules are a tree, and the rule is per
//! level: the children of one module (with everything under each) must not depend on each other
//! in a cycle. A module's dependencies on its own ancestors or descendants are its own business.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module paths (`node::fault`; the crate root is empty) and the modules each depends on.
pub type Graph = BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

/// The cycles of the crate whose sources are under `src` (`src/bin` left out: those are crates
/// of their own), each on one line as its edges, `a -> b (via a::x -> b::y)`; empty when there
/// are none.
pub fn cycles(src: &Path) -> Vec<String> {
    // Each dependency, lifted to the two children of the modules' closest common ancestor.
    let mut levels = Graph::new();
    let mut via: BTreeMap<(Vec<String>, Vec<String>), BTreeSet<String>> = BTreeMap::new();
    for (from, deps) in graph(src) {
        levels.entry(from.clone()).or_default();
        for to in deps {
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue;
            }
            let (a, b) = (from[..=common].to_vec(), to[..=common].to_vec());
            levels.entry(a.clone()).or_default().insert(b.clone());
            levels.entry(b.clone()).or_default();
            if (&a, &b) != (&from, &to) {
                via.entry((a, b))
                    .or_default()
                    .insert(format!("{} -> {}", name(&from), name(&to)));
            }
        }
    }
    strongly_connected(&levels)
        .into_iter()
        .map(|scc| {
            let members: BTreeSet<&Vec<String>> = scc.iter().collect();
            let mut edges = Vec::new();
            for from in &scc {
                for to in levels[from].iter().filter(|t| members.contains(t)) {
                    let mut edge = format!("{} -> {}", name(from), name(to));
                    if let Some(v) = via.get(&(from.clone(), to.clone())) {
                        let v: Vec<&str> = v.iter().map(String::as_str).collect();
                        edge.push_str(&format!(" (via {})", v.join("; ")));
                    }
                    edges.push(edge);
                }
            }
            edges.join(", ")
        })
        .collect()
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// The module graph of the crate under `src`.
pub fn graph(src: &Path) -> Graph {
    let mut files = BTreeMap::new();
    collect(src, src, &mut files);
    let mut cleaned = BTreeMap::new();
    let mut test_only = BTreeSet::new();
    for (module, path) in &files {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (code, test_mods) = without_tests(&blank_comments_and_literals(&text));
        for m in test_mods {
            test_only.insert([module.clone(), vec![m]].concat());
        }
        cleaned.insert(module.clone(), code);
    }
    // A test-only module's submodules are test code too.
    cleaned.retain(|m, _| !test_only.iter().any(|t| m.starts_with(t)));
    let modules: BTreeSet<Vec<String>> = cleaned.keys().cloned().collect();
    cleaned
        .iter()
        .map(|(module, code)| {
            let deps = paths(module, code)
                .into_iter()
                .filter_map(|p| {
                    (0..=p.len())
                        .rev()
                        .map(|n| p[..n].to_vec())
                        .find(|prefix| modules.contains(prefix))
                })
                // Itself and its submodules: its own parts.
                .filter(|target| !target.starts_with(module))
                .collect();
            (module.clone(), deps)
        })
        .collect()
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<Vec<String>, PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let rel = path.strip_prefix(root).unwrap();
        if path.is_dir() {
            if rel != Path::new("bin") {
                collect(root, &path, out);
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let mut module: Vec<String> = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let last = module.last().map(String::as_str);
        if last == Some("mod") || (module.len() == 1 && matches!(last, Some("lib" | "main"))) {
            module.pop();
        }
        out.insert(module, path);
    }
}

/// `text` with comments, string and char literals blanked (same length, newlines kept), so
/// braces and paths in them do not count.
fn blank_comments_and_literals(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = b.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let next = b.get(i + 1).copied();
        if b[i] == '/' && next == Some('/') {
            let end = b[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(b.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == '/' && next == Some('*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < b.len() && depth > 0 {
                if b[j] == '/' && b.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if b[j] == '*' && b.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if b[i] == 'r'
            && matches!(next, Some('"' | '#'))
            && !ident_char(b.get(i.wrapping_sub(1)))
        {
            // Raw string: r"..." or r#"..."#.
            let hashes = b[i + 1..].iter().take_while(|&&c| c == '#').count();
            if b.get(i + 1 + hashes) != Some(&'"') {
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let close: Vec<char> = close.chars().collect();
            let start = i + 2 + hashes;
            let end = (start..b.len())
                .find(|&j| b[j..].starts_with(&close))
                .map_or(b.len(), |j| j + close.len());
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == '"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                j += if b[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i, j + 1);
            i = j + 1;
        } else if b[i] == '\'' {
            // A char literal ('x', '\n', '\u{..}'), else a lifetime.
            let end = if next == Some('\\') {
                b[i + 2..]
                    .iter()
                    .position(|&c| c == '\'')
                    .map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    blank(&mut out, i, end + 1);
                    i = end + 1;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn ident_char(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// `code` without its `#[cfg(test)]` items, and the names of the test-only file modules it
/// declares (`#[cfg(test)] mod tests;`).
fn without_tests(code: &str) -> (String, Vec<String>) {
    const ATTR: &str = "#[cfg(test)]";
    let mut out: Vec<char> = code.chars().collect();
    let chars = out.clone();
    let mut test_mods = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find(ATTR) {
        let start = from + found;
        // The attribute's item ends at its first `;` or the `}` closing its first `{`.
        let idx = code[..start].chars().count();
        let mut j = idx + ATTR.chars().count();
        let mut depth = 0usize;
        while j < chars.len() {
            match chars[j] {
                ';' if depth == 0 => break,
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        let item: String = chars[idx + ATTR.chars().count()..j.min(chars.len())]
            .iter()
            .collect();
        let words: Vec<&str> = item.split_whitespace().collect();
        if let ["mod", name] | ["pub", "mod", name] = words[..] {
            test_mods.push(name.to_string());
        }
        for c in &mut out[idx..(j + 1).min(chars.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        from = start + ATTR.len();
    }
    (out.into_iter().collect(), test_mods)
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Sep,
    Open,
    Close,
    Comma,
    Other,
}

fn tokens(code: &str) -> Vec<Token> {
    let b: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(b[start..i].iter().collect()));
            continue;
        }
        if c == ':' && b.get(i + 1) == Some(&':') {
            out.push(Token::Sep);
            i += 2;
            continue;
        }
        if !c.is_whitespace() {
            out.push(match c {
                '{' => Token::Open,
                '}' => Token::Close,
                ',' => Token::Comma,
                _ => Token::Other,
            });
        }
        i += 1;
    }
    out
}

/// Every crate-internal path `module`'s code names, made absolute (segments from the root).
fn paths(module: &[String], code: &str) -> Vec<Vec<String>> {
    let t = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let preceded_by_sep = i > 0 && t[i - 1] == Token::Sep;
        let base = match &t[i] {
            Token::Ident(w) if !preceded_by_sep && t.get(i + 1) == Some(&Token::Sep) => {
                match w.as_str() {
                    "crate" => Some(Vec::new()),
                    "self" => Some(module.to_vec()),
                    "super" => Some(module[..module.len().saturating_sub(1)].to_vec()),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some(mut base) = base else {
            i += 1;
            continue;
        };
        i += 2;
        while let (Some(Token::Ident(w)), Some(Token::Sep)) = (t.get(i), t.get(i + 1)) {
            if w != "super" {
                break;
            }
            base.pop();
            i += 2;
        }
        i = tree(&t, i, base, &mut out);
    }
    out
}

/// Parses a path tree (`a::b`, `{a, b::{c, self}}`) at `t[i]` under `base`; returns where it ends.
fn tree(t: &[Token], mut i: usize, mut base: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    loop {
        match t.get(i) {
            Some(Token::Ident(w)) => {
                if w != "self" {
                    base.push(w.clone());
                }
                i += 1;
                if t.get(i) == Some(&Token::Sep) {
                    i += 1;
                    continue;
                }
                out.push(base);
                return i;
            }
            Some(Token::Open) => {
                i += 1;
                loop {
                    match t.get(i) {
                        Some(Token::Close) => return i + 1,
                        Some(Token::Comma) => i += 1,
                        None => return i,
                        Some(_) => {
                            let next = tree(t, i, base.clone(), out);
                            // Skip what a tree does not consume (`as x`, `*`).
                            i = next.max(i + 1);
                            while !matches!(t.get(i), None | Some(Token::Comma | Token::Close)) {
                                i += 1;
                            }
                        }
                    }
                }
            }
            _ => {
                out.push(base);
                return i;
            }
        }
    }
}

fn strongly_connected(graph: &Graph) -> Vec<Vec<Vec<String>>> {
    struct Tarjan<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on_stack: BTreeSet<&'a Vec<String>>,
        out: Vec<Vec<Vec<String>>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a Vec<String>) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in &self.graph[v] {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on_stack.remove(w);
                    scc.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    self.out.push(scc);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out.sort();
    t.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (path, text) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    fn m(s: &str) -> Vec<String> {
        s.split("::").map(String::from).collect()
    }

    #[test]
    fn paths_in_use_trees_and_code_resolve_to_modules() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            &[
                ("lib.rs", "pub mod a; pub mod b; mod c;"),
                (
                    "a/mod.rs",
                    "pub mod x;\nuse crate::{b::{self, Thing as T}, c::*};\nuse self::x::Y;",
                ),
                (
                    "a/x.rs",
                    "fn f() { super::super::c::g(); let s = \"crate::b::no\"; } // crate::b\n",
                ),
                (
                    "b.rs",
                    "pub(crate) fn f(c: char) { let _ = '{'; }\n#[cfg(test)]\nmod tests { use crate::a::x; }\n",
                ),
                ("c.rs", "/* crate::a */ pub fn g() {}"),
                ("bin/tool.rs", "use crate::a;"),
            ],
        );
        let g = graph(tmp.path());
        assert_eq!(g.len(), 5, "{g:?}");
        assert_eq!(g[&m("a")], BTreeSet::from([m("b"), m("c")]));
        assert_eq!(g[&m("a::x")], BTreeSet::from([m("c")]));
        assert!(g[&m("b")].is_empty(), "{g:?}");
        assert!(g[&m("c")].is_empty(), "{g:?}");
        assert!(cycles(tmp.path()).is_empty());
    }

    #[test]
    fn a_cycle_through_submodules_is_found_and_a_parent_child_pair_is_not_one() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            &[
                ("lib.rs", "mod node; mod pods; mod server;"),
                ("node/mod.rs", "mod fault;\npub struct Ctx(fault::Fault);"),
                ("node/fault.rs", "pub struct Fault(crate::pods::Duration);"),
                ("pods.rs", "use crate::node::Ctx;\npub struct Duration;"),
                (
                    "server/mod.rs",
                    "mod routes;\npub struct Body;\nfn f() { self::routes::handle() }",
                ),
                ("server/routes.rs", "use super::Body;\npub fn handle() {}"),
            ],
        );
        assert_eq!(
            cycles(tmp.path()),
            ["node -> pods (via node::fault -> pods), pods -> node"]
        );
        std::fs::write(tmp.path().join("node/fault.rs"), "pub struct Fault;").unwrap();
        assert!(cycles(tmp.path()).is_empty(), "{:?}", cycles(tmp.path()));
    }
}
