//! Property tests of the SQL front end: random and mutated statements, run through the real
//! engine on a real data directory, never panic, and every refusal is a clear, one-line error.

use std::sync::OnceLock;

use kalamdb_core::{Engine, ErrorKind, Session};
use proptest::prelude::*;

/// Valid statements of every kind the engine takes; the mutations start from these.
const CORPUS: &[&str] = &[
    "CREATE NAMESPACE IF NOT EXISTS app",
    "CREATE USER TABLE app.u (id BIGINT PRIMARY KEY, body TEXT) WITH (FLUSH_POLICY = 'rows:1000', DELETED_RETENTION = '7d')",
    "CREATE SHARED TABLE app.s (id INT PRIMARY KEY, x DOUBLE) WITH (FLUSH_POLICY = 'rows:10,interval:60')",
    "CREATE STREAM TABLE app.e (kind TEXT) WITH (TTL_SECONDS = 60, MAX_BUFFER = 1000)",
    "INSERT INTO app.u VALUES (1, 'one'), (2, 'two')",
    "INSERT INTO app.s (id, x) VALUES (7, 1.5)",
    "UPDATE app.u SET body = 'x' WHERE id = 1",
    "DELETE FROM app.s WHERE id = 7",
    "SELECT * FROM app.u WHERE id = 2 ORDER BY id LIMIT 10",
    "SELECT count(*), sum(x) FROM app.s",
    "SELECT kind FROM app.e",
    "SELECT job_type, status FROM system.jobs",
    "SHOW TABLES IN app",
    "SHOW NAMESPACES",
    "DESCRIBE app.u",
    "ALTER NAMESPACE app SET OPTIONS (owner = 'ops')",
    "FLUSH TABLE app.u",
    "DROP TABLE IF EXISTS app.gone",
];

/// Text that stresses numbers, quoting and keywords.
const SPLICES: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "9223372036854775807",
    "-1",
    "0",
    "1e308",
    "NaN",
    "'",
    "''",
    "\"",
    "`",
    ";",
    "--",
    "/*",
    "(",
    ")",
    ",",
    "NULL",
    "SELECT",
    "WITH",
    "\u{0}",
    "é",
    "'18446744073709551'",
    "TTL_SECONDS = '18446744073709551'",
];

fn engine() -> &'static (tokio::runtime::Runtime, Engine, tempfile::TempDir) {
    static ENGINE: OnceLock<(tokio::runtime::Runtime, Engine, tempfile::TempDir)> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::init(dir.path().join("data"), "properties").expect("init");
        runtime
            .block_on(engine.execute(&Session::admin(), &CORPUS[..5].join("; ")))
            .expect("setup");
        (runtime, engine, dir)
    })
}

/// Runs `sql` as admin and as a user; a refusal must be a clear error.
fn run(sql: &str) -> Result<(), TestCaseError> {
    let (runtime, engine, _) = engine();
    for session in [Session::admin(), Session::user("alice")] {
        if let Err(e) = runtime.block_on(engine.execute(&session, sql)) {
            let message = e.to_string();
            prop_assert!(!message.trim().is_empty(), "empty error for {sql:?}");
            prop_assert!(!message.contains('\n'), "one line for {sql:?}: {message}");
            prop_assert!(
                !message.contains("panicked"),
                "a panic surfaced as an error for {sql:?}: {message}"
            );
            // Malformed input is the user's, not an internal failure, when the parser says so.
            if message.starts_with("malformed SQL") {
                prop_assert_eq!(e.kind(), ErrorKind::BadInput, "{}", message);
            }
        }
    }
    Ok(())
}

/// A corpus statement with one mutation: a range cut out, or a splice put in.
fn mutated() -> impl Strategy<Value = String> {
    (
        prop::sample::select(CORPUS),
        any::<prop::sample::Index>(),
        0usize..12,
        prop::sample::select(SPLICES),
        any::<bool>(),
    )
        .prop_map(|(base, at, len, splice, cut)| {
            let chars: Vec<char> = base.chars().collect();
            let at = at.index(chars.len() + 1);
            let end = (at + len).min(chars.len());
            let mut out: String = chars[..at].iter().collect();
            if !cut {
                out.push_str(splice);
            }
            out.extend(&chars[end..]);
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_statements_never_panic(sql in mutated()) {
        run(&sql)?;
    }

    #[test]
    fn random_text_never_panics(sql in "\\PC{0,80}") {
        run(&sql)?;
    }

    #[test]
    fn every_numeric_option_is_accepted_in_range_or_refused_by_name(
        value in prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[0-9]{18,30}",
            Just("3155760000".to_string()),
            Just("3155760001".to_string()),
        ],
        option in prop::sample::select(&["TTL_SECONDS", "MAX_BUFFER"][..]),
    ) {
        let sql = format!("CREATE STREAM TABLE app.p (v INT) WITH ({option} = '{value}')");
        let parsed = kalamdb_core::sql::check_syntax(&sql);
        let n: Option<u64> = value.parse().ok();
        let limit = if option == "TTL_SECONDS" { 3_155_760_000 } else { i64::MAX as u64 };
        match parsed {
            Ok(_) => prop_assert!(n.is_some_and(|n| n >= 1 && n <= limit), "{sql} accepted"),
            Err(e) => {
                prop_assert!(n.is_none_or(|n| n == 0 || n > limit), "{sql} refused: {e}");
                prop_assert!(e.to_string().contains(option), "{e}");
                prop_assert_eq!(e.kind(), ErrorKind::BadInput);
            }
        }
    }
}
