use kalamdb_store::Row;
use serde::{Deserialize, Serialize};

/// The result of one statement: the rows of a query, or the count a command affected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// One JSON object per row, keyed by column name.
    pub rows: Vec<Row>,
    /// Rows returned (queries) or affected (INSERT, UPDATE, DELETE, FLUSH).
    pub row_count: usize,
    /// What a command did, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl QueryResult {
    /// A command's result: no columns, a count and a message.
    pub fn done(row_count: usize, message: impl Into<String>) -> Self {
        QueryResult {
            columns: Vec::new(),
            rows: Vec::new(),
            row_count,
            message: Some(message.into()),
        }
    }

    /// Rows with the given columns.
    pub fn rows(columns: &[&str], rows: Vec<Row>) -> Self {
        QueryResult {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            row_count: rows.len(),
            rows,
            message: None,
        }
    }
}
