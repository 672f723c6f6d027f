//! DataFusion table providers over the engine's tables.

mod system;
mod table;

pub use system::{SYSTEM_TABLES, SystemTableProvider};
pub use table::{DataTableProvider, KEY_COLUMN};
