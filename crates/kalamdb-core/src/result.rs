use datafusion::arrow::json::WriterBuilder;
use datafusion::arrow::json::writer::JsonArray;
use datafusion::arrow::record_batch::RecordBatch;
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

/// Renders batches as JSON objects, nulls included, timestamps as ISO 8601 text.
pub(crate) fn batches_to_json(batches: &[RecordBatch]) -> crate::Result<Vec<Row>> {
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, JsonArray>(Vec::new());
    for b in batches {
        writer
            .write(b)
            .map_err(|e| crate::CoreError::Query(e.to_string()))?;
    }
    writer
        .finish()
        .map_err(|e| crate::CoreError::Query(e.to_string()))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| crate::CoreError::Query(e.to_string()))
}
