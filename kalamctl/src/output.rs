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
