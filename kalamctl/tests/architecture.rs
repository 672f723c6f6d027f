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
