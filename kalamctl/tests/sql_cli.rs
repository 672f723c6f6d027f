//! `kalamctl sql` itself, end to end: refusing malformed SQL before opening anything, paths
//! that are no database, output formats, the data directory from the environment. What the
//! SQL does is tested in process in `kalamdb-core/tests`.

mod common;
use common::{Db, kalamctl, snapshot};
use serde_json::json;

#[test]
fn malformed_sql_leaves_the_directory_byte_identical() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id INT PRIMARY KEY, name TEXT)");
    let before = snapshot(&db.dir);
    // A body whose last statement is malformed runs none of its statements.
    db.fails(
        "INSERT INTO app.t VALUES (1, 'a'); SELEC oops",
        2,
        "unsupported statement",
    );
    db.fails(
        "INSERT INTO app.t VALUES (1, 'a'); INSERT INTO app.t VALUES (",
        2,
        "malformed SQL",
    );
    // A malformed query is refused before anything runs, like any other statement.
    db.fails(
        "INSERT INTO app.t VALUES (1, 'a'); SELECT * FROM app.t WHERE",
        2,
        "malformed SQL",
    );
    db.fails(
        "INSERT INTO app.t VALUES (1, 'a'); SELECT 1 2",
        2,
        "malformed SQL",
    );
    db.fails(
        "INSERT INTO app.t VALUES (1, 'a'); EXPLAIN SELECT * FROM",
        2,
        "malformed SQL",
    );
    db.fails("CREATE TABLE app.u (x INT)", 2, "which kind");
    db.fails("   ;  ", 2, "no SQL statement");
    assert!(
        before == snapshot(&db.dir),
        "malformed SQL must not touch a single byte"
    );
    assert!(
        db.rows("SELECT * FROM app.t").is_empty(),
        "nothing was inserted"
    );
    // A well-formed EXPLAIN still runs: DataFusion's parser read it before anything ran.
    let plan = db.rows("EXPLAIN SELECT * FROM app.t");
    assert!(
        plan.iter().any(|r| r["plan_type"] == "logical_plan"),
        "{plan:?}"
    );
}

#[test]
fn paths_that_are_not_databases_are_refused_and_left_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("missing");
    let run = kalamctl(&[
        "sql",
        "--data-dir",
        missing.to_str().expect("utf8"),
        "SHOW NAMESPACES",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("not a KalamDB data directory") && run.stderr.contains("kalamctl init"),
        "{}",
        run.stderr
    );
    assert!(!missing.exists(), "nothing may be created");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let run = kalamctl(&[
        "sql",
        "--data-dir",
        empty.to_str().expect("utf8"),
        "SHOW NAMESPACES",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        std::fs::read_dir(&empty).expect("read").count(),
        0,
        "nothing may be created"
    );

    let run = kalamctl(&["sql", "SHOW NAMESPACES"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--data-dir is required"),
        "{}",
        run.stderr
    );

    let db = Db::new();
    let run = kalamctl(&["init", "--data-dir", db.path()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("already a KalamDB data directory"),
        "{}",
        run.stderr
    );
    let run = kalamctl(&[
        "sql",
        "--data-dir",
        db.dir.join("rocksdb").to_str().expect("utf8"),
        "SHOW NAMESPACES",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("pass its parent"), "{}", run.stderr);
}

#[test]
fn output_formats() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id INT PRIMARY KEY, name TEXT)");
    let run = db.sql_as(
        None,
        "INSERT INTO app.t VALUES (1, 'one'); SELECT id, name FROM app.t",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = run.json();
    assert_eq!(v["results"][0]["row_count"], 1);
    assert_eq!(v["results"][1]["columns"], json!(["id", "name"]));
    assert_eq!(v["results"][1]["rows"], json!([{"id": 1, "name": "one"}]));

    let run = kalamctl(&["sql", "--data-dir", db.path(), "SELECT id, name FROM app.t"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("id | name")
            && run.stdout.contains("one")
            && run.stdout.contains("(1 row)"),
        "{}",
        run.stdout
    );
    let run = kalamctl(&[
        "sql",
        "--quiet",
        "--data-dir",
        db.path(),
        "INSERT INTO app.t VALUES (2, 'two')",
    ]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, ""),
        "quiet prints no messages"
    );
}

#[test]
fn the_data_directory_can_come_from_the_environment() {
    let db = Db::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kalamctl"))
        .args([
            "sql",
            "--format",
            "json",
            "CREATE NAMESPACE from_env; SHOW NAMESPACES",
        ])
        .env("KALAMDB_DATA_DIR", &db.dir)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["results"][1]["rows"][0]["name"], "from_env");
}
