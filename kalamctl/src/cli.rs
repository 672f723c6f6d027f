//! Command-line syntax.

use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Parser, Subcommand, ValueEnum};
use kalamdb_core::{JobStatus, TableKind};

#[derive(Debug, Parser)]
#[command(name = "kalamctl", version, about = "Administer KalamDB data directories", long_about = None)]
pub struct Cli {
    /// The data directory (holds rocksdb/, storage/ and the pidfile lock).
    #[arg(long, global = true, env = "KALAMDB_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// A kalamd configuration file whose `storage.credentials` profiles reach the buckets of
    /// storage locations on object storage (the rest of the file is not read).
    #[arg(long, global = true, env = "KALAMDB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

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
    /// List, inspect, cancel, resume and prune jobs (`system.jobs`).
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Table operations that run offline.
    #[command(subcommand)]
    Table(TableCommand),
    /// A running kalamd's live queries (subscriptions): list them, or kill one.
    #[command(
        subcommand,
        after_help = "Examples:\n  kalamctl live list --server http://127.0.0.1:8080 --token $TOKEN\n  kalamctl live kill u1-c1-notes-q1 --server http://127.0.0.1:8080 --token $TOKEN"
    )]
    Live(LiveCommand),
    /// Scan every layer for inconsistencies and report them all. Read-only, and safe while
    /// kalamd runs. Exit 0 when clean, 1 for warnings only, 3 for any error.
    #[command(
        after_help = "Examples:\n  kalamctl verify --data-dir ./data\n  kalamctl verify --data-dir ./data --format json | jq '.summary'\n  kalamctl verify --data-dir ./data --repair    # offline: fixes counts, stale rows, abandoned jobs, empty orphan column families"
    )]
    Verify {
        /// Fix the safe classes (recounts, empty orphan column families, stale live queries,
        /// abandoned jobs, batch files a dead flush left unrecorded) and list every change.
        /// Needs the directory's lock (kalamd stopped).
        #[arg(long)]
        repair: bool,
        /// Skip reading every byte of the Parquet batch files for their SHA-256 (sizes,
        /// footers and schemas are still checked against the cold-tier manifest).
        #[arg(long)]
        fast: bool,
    },
    /// Take a legacy directory (G1, G2, or the original engine's G3) to the current format,
    /// offline, with a checkpoint to roll back to.
    #[command(
        subcommand,
        after_help = "Examples:\n  kalamctl migrate status --data-dir ./data\n  kalamctl migrate plan --data-dir ./data\n  kalamctl migrate apply --data-dir ./data --plan 3f9a0c1d2e4b5a69\n  kalamctl migrate rollback --data-dir ./data\n  kalamctl migrate finalize --data-dir ./data"
    )]
    Migrate(MigrateCommand),
    /// Back up a data directory (offline, or a running kalamd with --server) into a
    /// repository; list, verify, restore and prune its backups.
    #[command(
        subcommand,
        after_help = "Examples:\n  kalamctl backup create --data-dir ./data --to /var/backups/kalamdb\n  kalamctl backup create --server http://127.0.0.1:8080 --token $TOKEN --to /var/backups/kalamdb\n  kalamctl backup list /var/backups/kalamdb\n  kalamctl backup verify /var/backups/kalamdb --deep\n  kalamctl backup restore /var/backups/kalamdb --id 3 --to ./restored\n  kalamctl backup prune /var/backups/kalamdb --keep 7"
    )]
    Backup(BackupCommand),
    /// For CI: migrate a scratch copy of the directory, verify it and query every table.
    /// The original is only read. Exit 0 only if every check passes, 3 otherwise.
    #[command(
        after_help = "Examples:\n  kalamctl upgrade-check --data-dir ./data\n  kalamctl upgrade-check --data-dir ./data --format json --scratch /mnt/scratch/check"
    )]
    UpgradeCheck {
        /// Where to put the copy (empty or new; default: next to the data directory).
        #[arg(long, value_name = "DIR")]
        scratch: Option<PathBuf>,
        /// Keep the migrated copy for inspection.
        #[arg(long)]
        keep_scratch: bool,
        /// Migrate the copy without the records that cannot be converted.
        #[arg(long)]
        skip_invalid: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// The detected generation, the format, applied steps (with checksums and drift) and
    /// pending ones. Read-only.
    Status,
    /// Every change `apply` would make, per step and entity, and the records it cannot
    /// convert. Read-only; ends with a plan hash. Exit 3 if a record cannot be converted.
    Plan,
    /// Checkpoint the directory, then apply the pending steps. A stopped run continues where
    /// it stopped. Offline: needs the directory's lock.
    Apply {
        /// Refuse unless the directory still gives this plan hash (`migrate plan` prints it).
        #[arg(long, value_name = "HASH")]
        plan: Option<String>,
        /// Migrate without the records that cannot be converted (each is still reported).
        #[arg(long)]
        skip_invalid: bool,
        /// Migrate a copy into this new (or empty) data directory and leave the original
        /// untouched (SST and Parquet files hard-linked where the file system allows).
        #[arg(long, value_name = "NEW_DIR")]
        to: Option<std::path::PathBuf>,
    },
    /// Put the pre-migration checkpoint back (discarding everything written since); a
    /// directory that was in the original engine's layout gets exactly its original files.
    Rollback,
    /// Delete the checkpoint and what the original engine left behind (G1's column families
    /// and conf/, dropped tables' empty column families and Parquet files).
    Finalize,
}

/// Where a `live` command finds kalamd.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The running kalamd.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// An admin token.
    #[arg(
        long,
        env = "KALAMDB_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: String,
}

#[derive(Debug, Subcommand)]
pub enum LiveCommand {
    /// Every subscription kalamd serves (`SHOW LIVE QUERIES`).
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// End one subscription (`KILL LIVE QUERY`).
    Kill {
        /// Its live id, as `list` shows it.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a consistent, incremental backup: files the repository already holds are not
    /// copied again. Offline with --data-dir (needs the directory's lock), or online with
    /// --server (kalamd writes the repository, a path on its machine).
    Create {
        /// The repository (created if new or empty): a directory, or s3://bucket/prefix.
        #[arg(long, value_name = "REPO")]
        to: String,
        #[command(flatten)]
        credentials: Credentials,
        /// A running kalamd to back up instead of --data-dir.
        #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
        server: Option<String>,
        /// The admin token for --server.
        #[arg(
            long,
            env = "KALAMDB_TOKEN",
            value_name = "TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
        /// Read and checksum every file, even those unchanged (name, size and modification
        /// time) since the previous backup of this database.
        #[arg(long)]
        rehash: bool,
    },
    /// List the repository's backups, oldest first, with incomplete and damaged ones.
    List {
        repo: String,
        #[command(flatten)]
        credentials: Credentials,
    },
    /// Check every file's size and SHA-256 (one backup with --id). Exit 0 when intact, 3
    /// otherwise, naming each bad file.
    Verify {
        repo: String,
        #[command(flatten)]
        credentials: Credentials,
        #[arg(long, value_name = "N")]
        id: Option<u64>,
        /// Also restore to scratch, run verify on it and compare its row counts with the
        /// manifest (the --id backup, or the newest).
        #[arg(long)]
        deep: bool,
    },
    /// Restore a backup (the newest, or --id) into a new or empty directory. Reported done
    /// only after the copy passes verify and matches the manifest's counts.
    Restore {
        repo: String,
        #[command(flatten)]
        credentials: Credentials,
        #[arg(long, value_name = "N")]
        id: Option<u64>,
        /// The new data directory.
        #[arg(long, value_name = "NEWDIR")]
        to: PathBuf,
        /// Restore even when verify finds errors the database already had when it was backed
        /// up (every file still must match its checksum, and every count the manifest); the
        /// restore then exits 3 and names them, for `kalamctl verify --repair`.
        #[arg(long)]
        allow_verify_errors: bool,
    },
    /// Remove the locks an S3 repository's crashed writers left: those of processes of this
    /// host that no longer run, or, with --remove-all, every one. Exit 0 when the repository
    /// is left unlocked, 4 when a lock is kept (named).
    Unlock {
        repo: String,
        #[command(flatten)]
        credentials: Credentials,
        /// Also remove locks whose holder may still run (on another host): only once that
        /// process is known to be gone, or two writers may interleave.
        #[arg(long)]
        remove_all: bool,
    },
    /// Delete all but the newest N backups, and every file no kept backup needs.
    Prune {
        repo: String,
        #[command(flatten)]
        credentials: Credentials,
        #[arg(long, value_name = "N")]
        keep: usize,
    },
}

/// How an `s3://` repository is reached.
#[derive(Debug, Clone, clap::Args)]
pub struct Credentials {
    /// The credentials profile (in the --config file) for an s3:// repository; without it,
    /// the AWS_* environment.
    #[arg(long, value_name = "PROFILE")]
    pub credentials: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first. Works next to a running kalamd (read-only).
    #[command(
        after_help = "Examples:\n  kalamctl jobs list --data-dir ./data --status paused\n  kalamctl jobs list --data-dir ./data --type table_deletion --since 24h --format json"
    )]
    List {
        /// Only jobs in this state.
        #[arg(long, value_parser = job_status())]
        status: Option<JobStatus>,
        /// Only jobs of this type (`table_deletion`, `flush`, `stream_eviction`, `job_retention`).
        #[arg(long = "type", value_name = "TYPE")]
        job_type: Option<String>,
        /// Only jobs started within this long (`90m`, `24h`, `7d`) or since this time
        /// (`2026-11-01`, `2026-11-01T12:00:00Z`).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
    },
    /// Show one job in full. Works next to a running kalamd (read-only).
    Show { id: String },
    /// Cancel a job cooperatively: a running job reports `cancelling` until it stops at a
    /// safe point. A drop past its point of no return cannot be cancelled, only finished.
    Cancel { id: String },
    /// Finish a paused job (one whose process died part-way) in this process.
    Resume { id: String },
    /// Delete ended jobs (completed, failed, cancelled) older than a duration.
    Prune {
        /// How long ended jobs are kept (`12h`, `7d`, `30d`).
        #[arg(long, value_name = "DURATION", default_value = "7d")]
        older_than: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Drop a table offline: catalog, column family, every user's Parquet files, schemas and
    /// counts, as a resumable `table_deletion` job. Stale live-query rows are cleared.
    #[command(
        after_help = "Examples:\n  kalamctl table drop app.messages --data-dir ./data\n  kalamctl table drop app.messages --if-exists --type user --format json"
    )]
    Drop {
        /// The table, `namespace.table`.
        #[arg(value_name = "NS.TABLE")]
        table: String,
        /// Succeed when the table does not exist.
        #[arg(long)]
        if_exists: bool,
        /// Refuse unless the table is of this type.
        #[arg(long = "type", value_parser = table_kind())]
        kind: Option<TableKind>,
    },
}

/// `--status`: one of the job states, parsed into the engine's own type.
fn job_status() -> impl clap::builder::TypedValueParser<Value = JobStatus> {
    clap::builder::PossibleValuesParser::new(JobStatus::ALL.iter().map(|s| s.as_str()))
        .try_map(|s| s.parse::<JobStatus>())
}

/// `--type`: one of the data table kinds, parsed into the engine's own type.
fn table_kind() -> impl clap::builder::TypedValueParser<Value = TableKind> {
    clap::builder::PossibleValuesParser::new(TableKind::ALL.map(TableKind::as_str))
        .try_map(|s| TableKind::parse(&s).ok_or_else(|| format!("'{s}' is not a table kind")))
}
