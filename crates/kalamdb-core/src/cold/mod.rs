//! The cold tier: Parquet batch files and where they live.

pub mod arrow_rows;
pub mod leftovers;
pub mod manifest;
pub mod parquet;
pub mod paths;
