//! Conversion between stored JSON rows and Arrow record batches.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int32Array,
    Int32Builder, Int64Array, Int64Builder, StringArray, StringBuilder, TimestampMillisecondArray,
    TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use kalamdb_sql::tolerant::millis_from_json;
use kalamdb_store::Row;
use serde_json::Value;

use crate::{CoreError, Result};

/// Builds a batch with `schema` from rows; each field is read from the row's member of the same
/// name (absent or mistyped values become null). `extra` supplies columns not in the row
/// (such as the row key), by field name.
pub fn rows_to_batch(
    schema: &SchemaRef,
    rows: &[&Row],
    extra: &[(&str, Vec<String>)],
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        if let Some((_, values)) = extra.iter().find(|(name, _)| *name == field.name()) {
            columns.push(Arc::new(StringArray::from_iter_values(values.iter())));
            continue;
        }
        let name = field.name().as_str();
        let array: ArrayRef = match field.data_type() {
            DataType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(rows.len());
                rows.iter()
                    .for_each(|r| b.append_option(value(r, name).and_then(Value::as_bool)));
                Arc::new(b.finish())
            }
            DataType::Int32 => {
                let mut b = Int32Builder::with_capacity(rows.len());
                rows.iter().for_each(|r| {
                    b.append_option(
                        value(r, name)
                            .and_then(Value::as_i64)
                            .and_then(|n| i32::try_from(n).ok()),
                    )
                });
                Arc::new(b.finish())
            }
            DataType::Int64 => {
                let mut b = Int64Builder::with_capacity(rows.len());
                rows.iter()
                    .for_each(|r| b.append_option(value(r, name).and_then(Value::as_i64)));
                Arc::new(b.finish())
            }
            DataType::Float64 => {
                let mut b = Float64Builder::with_capacity(rows.len());
                rows.iter()
                    .for_each(|r| b.append_option(value(r, name).and_then(Value::as_f64)));
                Arc::new(b.finish())
            }
            DataType::Utf8 => {
                let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
                rows.iter()
                    .for_each(|r| b.append_option(value(r, name).map(text_of)));
                Arc::new(b.finish())
            }
            DataType::Timestamp(TimeUnit::Millisecond, None) => {
                let mut b = TimestampMillisecondBuilder::with_capacity(rows.len());
                rows.iter()
                    .for_each(|r| b.append_option(value(r, name).and_then(millis_from_json)));
                Arc::new(b.finish())
            }
            other => {
                return Err(CoreError::Query(format!(
                    "column '{name}' has unsupported type {other}"
                )));
            }
        };
        columns.push(array);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        .map_err(|e| CoreError::Query(e.to_string()))
}

fn value<'a>(row: &'a Row, name: &str) -> Option<&'a Value> {
    row.get(name).filter(|v| !v.is_null())
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads every row of a batch back into JSON rows (nulls are left out), with timestamps as
/// epoch milliseconds.
pub fn batch_to_rows(batch: &RecordBatch) -> Result<Vec<Row>> {
    let mut rows = vec![Row::new(); batch.num_rows()];
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = field.name();
        let set = |rows: &mut Vec<Row>, i: usize, v: Value| {
            rows[i].insert(name.clone(), v);
        };
        macro_rules! copy {
            ($ty:ty, $conv:expr) => {{
                let a = column.as_any().downcast_ref::<$ty>().ok_or_else(|| {
                    CoreError::Query(format!("column '{name}' is not {}", stringify!($ty)))
                })?;
                for i in 0..a.len() {
                    if a.is_valid(i) {
                        set(&mut rows, i, $conv(a.value(i)));
                    }
                }
            }};
        }
        match column.data_type() {
            DataType::Boolean => copy!(BooleanArray, Value::Bool),
            DataType::Int32 => copy!(Int32Array, Value::from),
            DataType::Int64 => copy!(Int64Array, Value::from),
            DataType::Float64 => copy!(Float64Array, Value::from),
            DataType::Utf8 => copy!(StringArray, |s: &str| Value::from(s.to_string())),
            DataType::Timestamp(TimeUnit::Millisecond, None) => {
                copy!(TimestampMillisecondArray, Value::from)
            }
            DataType::Timestamp(..)
            | DataType::Int8
            | DataType::Int16
            | DataType::Float32
            | DataType::LargeUtf8 => {
                let cast = cast_for_read(column, field.data_type())?;
                let tmp = RecordBatch::try_from_iter([(name.as_str(), cast)])
                    .map_err(|e| CoreError::Query(e.to_string()))?;
                for (i, r) in batch_to_rows(&tmp)?.into_iter().enumerate() {
                    rows[i].extend(r);
                }
            }
            other => {
                return Err(CoreError::Query(format!(
                    "column '{name}' has unsupported type {other}"
                )));
            }
        }
    }
    Ok(rows)
}

fn cast_for_read(column: &ArrayRef, ty: &DataType) -> Result<ArrayRef> {
    use datafusion::arrow::compute::cast;
    let target = match ty {
        DataType::Timestamp(..) => DataType::Timestamp(TimeUnit::Millisecond, None),
        DataType::Int8 | DataType::Int16 => DataType::Int32,
        DataType::Float32 => DataType::Float64,
        _ => DataType::Utf8,
    };
    cast(column, &target).map_err(|e| CoreError::Query(e.to_string()))
}
