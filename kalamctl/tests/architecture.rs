//! The layering rule: only kalamdb-store and kalamdb-sql may depend on `rocksdb`.

use std::process::Command;

#[test]
fn only_the_storage_crates_depend_on_rocksdb() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    assert!(
        packages.len() >= 5,
        "expected the whole workspace, got {} packages",
        packages.len()
    );
    let mut offenders = Vec::new();
    let mut allowed_seen = 0;
    for p in packages {
        let name = p["name"].as_str().unwrap_or_default();
        let uses_rocksdb = p["dependencies"].as_array().is_some_and(|deps| {
            deps.iter()
                .any(|d| d["name"] == "rocksdb" || d["name"] == "librocksdb-sys")
        });
        match name {
            "kalamdb-store" | "kalamdb-sql" => allowed_seen += uses_rocksdb as usize,
            _ if uses_rocksdb => offenders.push(name.to_string()),
            _ => {}
        }
    }
    assert!(
        offenders.is_empty(),
        "these crates depend on rocksdb, which only kalamdb-store and kalamdb-sql may: {offenders:?}"
    );
    assert!(
        allowed_seen >= 1,
        "kalamdb-store should be the crate that owns rocksdb"
    );
}

/// The modules of one crate: each top-level module and the top-level modules it names.
type ModuleGraph = std::collections::BTreeMap<String, std::collections::BTreeSet<String>>;

/// The module path of a source file under `src/`: `a/b.rs` and `a/b/mod.rs` are `[a, b]`,
/// `lib.rs` and `main.rs` the root `[]`.
fn module_path(rel: &std::path::Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs").to_string();
        if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
            parts.push(stem);
        }
    }
    parts
}

/// The identifiers right after `crate::` or a run of `super::` in `code`, resolved to
/// absolute module paths from `here`; for `use crate::{a, b}` groups, each name in it.
fn references(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if boundary && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let mut base: Vec<String> = Vec::new();
            let mut j = i;
            if code[j..].starts_with("crate::") {
                j += "crate::".len();
            } else {
                base = here.to_vec();
                while code[j..].starts_with("super::") {
                    base.pop();
                    j += "super::".len();
                }
            }
            if code[j..].starts_with('{') {
                let end = code[j..].find('}').map_or(code.len(), |e| j + e);
                for item in code[j + 1..end].split(',') {
                    let name = ident(item.trim());
                    if !name.is_empty() {
                        out.push([base.clone(), vec![name]].concat());
                    }
                }
                i = end;
                continue;
            }
            let name = ident(&code[j..]);
            if !name.is_empty() {
                out.push([base, vec![name]].concat());
            }
            i = j;
            continue;
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// The top-level module graph of the crate in `dir` (tests left out: they may reach
/// anything). A name the crate root re-exports (`pub use m::Name`) counts as `m`.
fn module_graph(dir: &std::path::Path) -> ModuleGraph {
    let src = dir.join("src");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read src").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let root_text = ["lib.rs", "main.rs"]
        .iter()
        .find_map(|r| std::fs::read_to_string(src.join(r)).ok())
        .unwrap_or_default();
    let mut reexported = std::collections::BTreeMap::new();
    for line in root_text.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for name in names.trim_matches(|c| "{};".contains(c)).split(',') {
            let name = name.trim().trim_end_matches([';', '}']);
            if !name.is_empty() {
                reexported.insert(name.to_string(), module.to_string());
            }
        }
    }
    let modules: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|f| {
            module_path(f.strip_prefix(&src).expect("under src"))
                .first()
                .cloned()
        })
        .collect();
    let mut graph = ModuleGraph::new();
    for f in &files {
        let here = module_path(f.strip_prefix(&src).expect("under src"));
        let Some(top) = here.first().cloned() else {
            continue;
        };
        let text = std::fs::read_to_string(f).expect("read");
        // Code only: tests may reach anything, and a comment's link is not a dependency.
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .map(|l| l.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let code = code.as_str();
        let edges = graph.entry(top.clone()).or_default();
        for path in references(code, &here) {
            let Some(first) = path.first() else { continue };
            let target = if modules.contains(first) {
                first.clone()
            } else if let Some(m) = reexported.get(first) {
                m.clone()
            } else {
                continue;
            };
            if target != top {
                edges.insert(target);
            }
        }
    }
    graph
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(graph: &ModuleGraph) -> Vec<std::collections::BTreeSet<String>> {
    struct State<'a> {
        graph: &'a ModuleGraph,
        index: std::collections::BTreeMap<&'a str, usize>,
        low: std::collections::BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        next: usize,
        found: Vec<std::collections::BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = std::collections::BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                component.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: Default::default(),
        low: Default::default(),
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn the_module_graph_of_every_crate_is_acyclic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut crates: Vec<std::path::PathBuf> = ["kalamctl", "kalamd"]
        .iter()
        .map(|c| root.join(c))
        .collect();
    for e in std::fs::read_dir(root.join("crates"))
        .expect("crates")
        .flatten()
    {
        crates.push(e.path());
    }
    let mut checked = 0;
    for dir in crates.iter().filter(|d| d.join("src").is_dir()) {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        let graph = module_graph(dir);
        assert!(!graph.is_empty(), "{name:?}: no modules found");
        let found = cycles(&graph);
        assert!(
            found.is_empty(),
            "{name:?}: these modules import each other in a cycle: {found:?} ({graph:?})"
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} crates checked");
    // The check sees cycles: the one the crate split and the job registry removed.
    let mut before = ModuleGraph::new();
    for (a, b) in [
        ("backup", "verify"),
        ("verify", "jobs"),
        ("jobs", "backup"),
        ("data_dir", "jobs"),
        ("jobs", "data_dir"),
    ] {
        before.entry(a.into()).or_default().insert(b.into());
    }
    assert_eq!(cycles(&before).len(), 1, "{:?}", cycles(&before));
    assert_eq!(cycles(&before)[0].len(), 4);
}
