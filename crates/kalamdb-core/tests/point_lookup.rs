//! The point-lookup fast path (`SELECT ... WHERE pk = literal`, answered without DataFusion)
//! gives the answer DataFusion gives, whatever happened to the table: random inserts, updates,
//! soft deletes, re-inserts and flushes, on user and shared tables keyed by BIGINT or TEXT,
//! read by two users. Each lookup is compared with the same query written so that DataFusion
//! plans it (`pk + 0 = N`, which the fast path does not take and which scans every row), and
//! with a model of what the table holds. INSERT's duplicate check, which reads both tiers in
//! one batch per statement, is checked against the same model.

mod common;

use std::collections::BTreeMap;

use common::Db;
use proptest::prelude::*;
use serde_json::Value;

#[derive(Debug, Clone)]
enum Op {
    /// Insert these keys in one statement, as this user (0 or 1).
    Insert(usize, Vec<u8>),
    Update(usize, u8, u8),
    Delete(usize, u8),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..2, prop::collection::vec(0u8..12, 1..4)).prop_map(|(u, ks)| Op::Insert(u, ks)),
        2 => (0usize..2, 0u8..12, any::<u8>()).prop_map(|(u, k, v)| Op::Update(u, k, v)),
        2 => (0usize..2, 0u8..12).prop_map(|(u, k)| Op::Delete(u, k)),
        1 => Just(Op::Flush),
    ]
}

const USERS: [&str; 2] = ["alice", "bob"];

struct Table {
    user_table: bool,
    text_key: bool,
}

impl Table {
    fn key(&self, k: u8) -> String {
        if self.text_key {
            format!("'k{k}'")
        } else {
            k.to_string()
        }
    }
    /// The same comparison written so that DataFusion plans it and scans the table.
    fn planned(&self, k: u8) -> String {
        if self.text_key {
            format!("id || '' = 'k{k}'")
        } else {
            format!("id + 0 = {k}")
        }
    }
    /// Whose rows a user sees: their own in a user table, everyone's in a shared one.
    fn owner(&self, user: usize) -> usize {
        if self.user_table { user } else { 0 }
    }
}

fn run(table: Table, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let db = Db::new();
    let kind = if table.user_table { "USER" } else { "SHARED" };
    let key_type = if table.text_key { "TEXT" } else { "BIGINT" };
    db.ok(&format!(
        "CREATE NAMESPACE app; CREATE {kind} TABLE app.t (id {key_type} PRIMARY KEY, body TEXT, n INT)"
    ));
    // What each owner's rows are: key -> body.
    let mut model: [BTreeMap<u8, String>; 2] = [BTreeMap::new(), BTreeMap::new()];
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Insert(user, keys) => {
                let owner = table.owner(*user);
                let mut unique = keys.clone();
                unique.sort_unstable();
                unique.dedup();
                let values: Vec<String> = unique
                    .iter()
                    .map(|k| format!("({}, 'i{step}', {k})", table.key(*k)))
                    .collect();
                let sql = format!("INSERT INTO app.t VALUES {}", values.join(", "));
                let result = db.sql_as(Some(USERS[*user]), &sql);
                let clash = unique.iter().find(|k| model[owner].contains_key(k));
                match (clash, result) {
                    (None, Ok(_)) => {
                        for k in &unique {
                            model[owner].insert(*k, format!("i{step}"));
                        }
                    }
                    // The refusal names the first live key in the statement's order.
                    (Some(k), Err(e)) => {
                        let named = format!(
                            "duplicate primary key '{}'",
                            table.key(*k).trim_matches('\'')
                        );
                        prop_assert!(
                            e.to_string().contains(&named),
                            "step {}: {} (expected {})",
                            step,
                            e,
                            named
                        );
                    }
                    (None, Err(e)) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step}: `{sql}` refused, no key is live: {e}"
                        )));
                    }
                    (Some(k), Ok(_)) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step}: `{sql}` accepted a live key {k}"
                        )));
                    }
                }
            }
            Op::Update(user, k, v) => {
                db.ok_as(
                    Some(USERS[*user]),
                    &format!(
                        "UPDATE app.t SET body = 'u{v}' WHERE id = {}",
                        table.key(*k)
                    ),
                );
                if let Some(body) = model[table.owner(*user)].get_mut(k) {
                    *body = format!("u{v}");
                }
            }
            Op::Delete(user, k) => {
                db.ok_as(
                    Some(USERS[*user]),
                    &format!("DELETE FROM app.t WHERE id = {}", table.key(*k)),
                );
                model[table.owner(*user)].remove(k);
            }
            Op::Flush => {
                db.ok("FLUSH TABLE app.t");
            }
        }
    }
    for (user, name) in USERS.iter().enumerate() {
        for k in 0u8..13 {
            for cols in ["*", "body, id", "n"] {
                let fast = db.ok_as(
                    Some(name),
                    &format!("SELECT {cols} FROM app.t WHERE id = {}", table.key(k)),
                );
                let planned = db.ok_as(
                    Some(name),
                    &format!("SELECT {cols} FROM app.t WHERE {}", table.planned(k)),
                );
                prop_assert_eq!(&fast, &planned, "user {} key {} columns {}", name, k, cols);
            }
            let rows = db.rows_as(
                Some(name),
                &format!("SELECT body FROM app.t WHERE id = {}", table.key(k)),
            );
            let expected: Vec<Value> = model[table.owner(user)]
                .get(&k)
                .map(|body| serde_json::json!({ "body": body }))
                .into_iter()
                .collect();
            prop_assert_eq!(rows, expected, "user {} key {}", name, k);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn point_lookups_answer_what_datafusion_answers(
        user_table in any::<bool>(),
        text_key in any::<bool>(),
        ops in prop::collection::vec(op(), 1..24),
    ) {
        run(Table { user_table, text_key }, ops)?;
    }
}

/// The fast path's answer carries the columns even when no row matches, as a planned query's
/// does, and the soft-deleted row a lookup skips is still there for a query on `_deleted`.
#[test]
fn an_empty_answer_names_its_columns_and_deleted_rows_stay_queryable() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE SHARED TABLE app.s (id BIGINT PRIMARY KEY, body TEXT)");
    db.ok("INSERT INTO app.s VALUES (1, 'one'); DELETE FROM app.s WHERE id = 1");
    for sql in [
        "SELECT id, body FROM app.s WHERE id = 1",
        "SELECT id, body FROM app.s WHERE id + 0 = 1",
    ] {
        let result = &db.ok(sql)[0];
        assert_eq!(
            result["columns"],
            serde_json::json!(["id", "body"]),
            "{sql}"
        );
        assert_eq!(result["row_count"], 0, "{sql}");
    }
    assert_eq!(
        db.rows("SELECT body FROM app.s WHERE id = 1 AND _deleted = true"),
        vec![serde_json::json!({"body": "one"})]
    );
}
