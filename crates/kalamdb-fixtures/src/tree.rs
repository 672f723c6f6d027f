//! Trees on disk as tests compare them: every file and directory below a folder, and a
//! snapshot of every byte ("nothing changed" is proven on all of them).

use std::path::Path;

/// Every regular file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Every directory below `dir`, relative, with a trailing `/`, sorted.
pub fn dirs_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push(format!("{}/", p.strip_prefix(dir).unwrap_or(&p).display()));
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A snapshot of every file's name, size and content under `dir`, and of every directory
/// (an empty one made by a refusal is a change too).
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    dirs_under(dir)
        .into_iter()
        .map(|d| (d, Vec::new()))
        .chain(files_under(dir).into_iter().map(|f| {
            let bytes = std::fs::read(dir.join(&f)).unwrap_or_default();
            (f, bytes)
        }))
        .collect()
}
