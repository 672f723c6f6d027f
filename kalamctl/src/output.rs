//! Rendering results as a human table or as JSON.

use kalamdb_core::QueryResult;
use serde_json::{Value, json};
use tabled::builder::Builder;
use tabled::settings::Style;

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "NULL".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A result as a table, or its message for commands that return no columns.
pub fn render_table(result: &QueryResult) -> String {
    if result.columns.is_empty() {
        return result
            .message
            .clone()
            .unwrap_or_else(|| format!("{} row(s)", result.row_count));
    }
    let mut builder = Builder::default();
    builder.push_record(result.columns.iter().cloned());
    for row in &result.rows {
        builder.push_record(result.columns.iter().map(|c| cell(row.get(c))));
    }
    let mut table = builder.build();
    table.with(Style::psql());
    format!(
        "{table}\n({} row{})",
        result.row_count,
        if result.row_count == 1 { "" } else { "s" }
    )
}

/// `{"results":[{"columns":[...],"rows":[{...}],"row_count":N,"message":"..."}]}`.
pub fn render_json(results: &[QueryResult]) -> String {
    json!({ "results": results }).to_string()
}

/// Prints one JSON document on stdout.
pub fn print_json(value: &Value) {
    println!("{value}");
}

/// A table with a header row; `(N rows)` below it.
pub fn render_rows(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut builder = Builder::default();
    builder.push_record(header.iter().copied());
    let mut n = 0;
    for row in rows {
        builder.push_record(row);
        n += 1;
    }
    let mut table = builder.build();
    table.with(Style::psql());
    format!("{table}\n({n} row{})", if n == 1 { "" } else { "s" })
}

/// One record as `name | value` lines.
pub fn render_pairs(pairs: &[(&str, String)]) -> String {
    let mut builder = Builder::default();
    for (k, v) in pairs {
        builder.push_record([k.to_string(), v.clone()]);
    }
    let mut table = builder.build();
    table.with(Style::blank());
    table.to_string()
}

/// Epoch milliseconds as UTC time, to the second.
pub fn human_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

pub fn human_bytes(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}
