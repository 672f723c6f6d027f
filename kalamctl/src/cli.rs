//! Command-line syntax.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "kalamctl", version, about = "Administer KalamDB data directories", long_about = None)]
pub struct Cli {
    /// The data directory (holds rocksdb/, storage/ and the pidfile lock).
    #[arg(long, global = true, env = "KALAMDB_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Print results only: no messages or progress.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an empty database in the current format.
    Init,
    /// Run SQL statements (separated by `;`) against an offline data directory.
    #[command(
        after_help = "Examples:\n  kalamctl sql --data-dir ./data \"CREATE NAMESPACE app; SHOW NAMESPACES\"\n  kalamctl sql --data-dir ./data --user alice --format json \"SELECT * FROM app.notes\""
    )]
    Sql {
        /// Act as this user (role `user`); without it, act as admin.
        #[arg(long, value_name = "ID")]
        user: Option<String>,
        /// The statements; `-` reads them from standard input.
        sql: String,
    },
}
