//! Lock contention and format checks.

mod common;
use common::{Db, kalamctl};
use kalamdb_core::data_dir::{DataDir, DirLock};

#[test]
fn a_locked_directory_exits_4_and_names_the_holder() {
    let db = Db::new();
    let lock = DirLock::acquire(&DataDir::new(&db.dir), "test-holder").expect("lock");
    let run = kalamctl(&["sql", "--data-dir", db.path(), "SHOW NAMESPACES"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("pid {}", std::process::id())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("test-holder"), "{}", run.stderr);
    assert!(
        !run.stderr.to_lowercase().contains("delete the lock"),
        "{}",
        run.stderr
    );
    drop(lock);
    assert_eq!(
        kalamctl(&["sql", "--data-dir", db.path(), "SHOW NAMESPACES"]).code,
        0
    );
}

#[test]
fn newer_and_unmarked_formats_exit_6() {
    let db = Db::new();
    {
        let storage = kalamdb_store::Storage::open(
            &db.dir.join("rocksdb"),
            kalamdb_store::OpenMode::ReadWrite,
        )
        .expect("open");
        let marker = serde_json::json!({"format_version": 99, "written_by": "kalamdb 9.0.0", "created_at": 1, "updated_at": 1});
        storage
            .put(
                kalamdb_store::DEFAULT_CF,
                kalamdb_sql::FORMAT_MARKER_KEY.as_bytes(),
                marker.to_string().as_bytes(),
            )
            .expect("put");
    }
    let run = kalamctl(&["sql", "--data-dir", db.path(), "SHOW NAMESPACES"]);
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(
        run.stderr.contains("kalamdb 9.0.0") && run.stderr.contains("format 99"),
        "{}",
        run.stderr
    );
    {
        let storage = kalamdb_store::Storage::open(
            &db.dir.join("rocksdb"),
            kalamdb_store::OpenMode::ReadWrite,
        )
        .expect("open");
        storage
            .delete(
                kalamdb_store::DEFAULT_CF,
                kalamdb_sql::FORMAT_MARKER_KEY.as_bytes(),
            )
            .expect("delete");
    }
    let run = kalamctl(&["sql", "--data-dir", db.path(), "SHOW NAMESPACES"]);
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(run.stderr.contains("kalamctl migrate"), "{}", run.stderr);
}
