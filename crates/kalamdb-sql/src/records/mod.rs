//! The seven system tables' records, in their kalamdb-sql ("G3") shapes, and the cold-tier
//! manifest added in format 2.

mod cold_batch;
mod job;
mod live_query;
mod namespace;
mod storage_location;
mod table;
mod table_schema;
mod user;

pub use cold_batch::{ColdBatchRecord, batch_order};
pub use job::{JobProgress, JobRecord, JobStatus, ProcessIdentity};
pub use live_query::LiveQueryRecord;
pub use namespace::NamespaceRecord;
pub use storage_location::{LocationType, StorageLocationRecord};
pub use table::{FlushPolicy, TableRecord, TableType};
pub use table_schema::{SchemaField, SchemaJson, TableSchemaRecord};
pub use user::UserRecord;
