//! The specs are held by tests: every test a spec names (`path::function`) exists; every exit
//! code in `specs/cli.md` and every HTTP status in `specs/http.md` names, in its row, a test
//! that produces it, and that test's body checks for that very code.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn spec(name: &str) -> String {
    std::fs::read_to_string(root().join("specs").join(name))
        .unwrap_or_else(|e| panic!("specs/{name}: {e}"))
}

/// The `path::function` references in `text`, from its backticked spans.
fn test_refs(text: &str) -> Vec<(String, String)> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|span| {
            let (path, function) = span.split_once("::")?;
            let is_ref = path.ends_with(".rs")
                && !function.is_empty()
                && function
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            is_ref.then(|| (path.to_string(), function.to_string()))
        })
        .collect()
}

/// The source of `function` in `path`: from `fn function(` to the end of its block.
fn body_of(path: &str, function: &str) -> String {
    let text = std::fs::read_to_string(root().join(path))
        .unwrap_or_else(|e| panic!("{path}, named in specs/: {e}"));
    let start = text
        .find(&format!("fn {function}("))
        .unwrap_or_else(|| panic!("{path} has no `fn {function}(`, though specs/ names it"));
    let rest = &text[start..];
    let open = rest.find('{').expect("a body");
    let mut depth = 0usize;
    for (i, c) in rest[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return rest[..open + i + 1].to_string();
                }
            }
            _ => {}
        }
    }
    rest.to_string()
}

/// Whether `number` stands alone in `text` (not part of a longer number or name).
fn mentions_number(text: &str, number: &str) -> bool {
    text.match_indices(number).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + number.len()..].chars().next();
        let apart = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        apart(before) && apart(after)
    })
}

/// The rows of the first table after `heading`, split into trimmed cells.
fn table_after(text: &str, heading: &str) -> Vec<Vec<String>> {
    let at = text
        .find(heading)
        .unwrap_or_else(|| panic!("no `{heading}`"));
    text[at..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn every_test_named_in_the_specs_exists() {
    let mut named = 0;
    for entry in std::fs::read_dir(root().join("specs")).expect("specs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            let text = std::fs::read_to_string(&path).expect("read spec");
            for (file, function) in test_refs(&text) {
                body_of(&file, &function);
                named += 1;
            }
        }
    }
    assert!(named >= 40, "specs/ name only {named} tests");
}

#[test]
fn every_exit_code_and_http_status_is_produced_by_the_test_named_for_it() {
    let rows = table_after(&spec("cli.md"), "## Exit codes");
    assert_eq!(
        rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["0", "1", "2", "3", "4", "5", "6"],
        "the exit-code table of specs/cli.md"
    );
    for row in &rows {
        let code = &row[0];
        let refs = test_refs(row.last().expect("cells"));
        assert!(
            !refs.is_empty(),
            "exit {code} names no test in specs/cli.md"
        );
        for (file, function) in refs {
            assert!(
                mentions_number(&body_of(&file, &function), code),
                "{file}::{function} is named for exit {code} but never checks for it"
            );
        }
    }

    let rows = table_after(&spec("http.md"), "| status | code | when");
    assert!(rows.len() >= 12, "the status table of specs/http.md");
    for row in &rows {
        let (status, code) = (&row[0], row[1].trim_matches('`'));
        let refs = test_refs(row.last().expect("cells"));
        assert!(
            !refs.is_empty(),
            "HTTP {status} {code} names no test in specs/http.md"
        );
        let produced = refs.iter().any(|(file, function)| {
            let body = body_of(file, function);
            mentions_number(&body, status) && body.contains(&format!("\"{code}\""))
        });
        assert!(
            produced,
            "no test named for HTTP {status} `{code}` checks for both: {refs:?}"
        );
    }
}

/// Every fail point the code names is in specs/format.md's table.
#[test]
fn every_fail_point_is_documented() {
    let spec = spec("format.md");
    let mut dirs = vec![root().join("kalamd/src"), root().join("kalamctl/src")];
    for e in std::fs::read_dir(root().join("crates"))
        .expect("crates")
        .flatten()
    {
        dirs.push(e.path().join("src"));
    }
    let mut seen = 0;
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for piece in text.split("fail::point(\"").skip(1) {
                let name = piece.split('"').next().unwrap_or_default();
                seen += 1;
                assert!(
                    spec.contains(&format!("`{name}`")),
                    "fail point {name} ({}) is not in specs/format.md",
                    path.display()
                );
            }
        }
    }
    assert!(seen >= 15, "only {seen} fail points found");
}
