//! Side-by-side benchmarks for KalamDB.
//!
//! Each benchmark runs its variants in one process, on one machine, one after the other, and
//! reports their ratio: absolute figures on a shared, noisy machine mean little, ratios mean
//! more. Record results in `specs/benchmarks.md` with the command that produced them.

/// mimalloc, not glibc's malloc: allocation-heavy work (a flush, INSERTs) runs 1.2-1.7x as
/// fast with it (`specs/benchmarks.md`, *The allocator*).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod backup;
mod datagen;
mod drop;
mod flush;
mod flush_s3;
mod flush_writes;
mod http;
mod insert;
mod live;
mod migrate;
mod point_select;
mod report;
mod scan;
mod soak;
mod sync_writes;
mod verify;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kalamdb-bench",
    about = "Side-by-side KalamDB benchmarks that report ratios"
)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Insert throughput: SQL INSERT vs the user-table store directly, same rows.
    Insert {
        #[arg(long, default_value_t = 200_000)]
        rows: usize,
        /// Rows per INSERT statement / store batch.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        #[arg(long, default_value_t = 10)]
        users: usize,
        /// Rounds; each inserts `rows` rows both ways, into fresh tables, in alternating order.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// kalamd over HTTP vs the engine in-process: batched INSERT at concurrency 1, 8, 32 and
    /// point-SELECT p50/p99. Needs `cargo build --release -p kalamd`.
    Http {
        #[command(flatten)]
        data: Lookups,
        /// INSERT statements per concurrent worker.
        #[arg(long, default_value_t = 200)]
        statements: usize,
        /// Rows per INSERT statement.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Rounds of the INSERT variants (medians are reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// DROP TABLE time: a small and a large user table, each with Parquet files from every
    /// user and hot rows; reports both times and their ratio (the goal is near 1).
    Drop {
        #[arg(long, default_value_t = 10_000)]
        small: usize,
        #[arg(long, default_value_t = 1_000_000)]
        large: usize,
        #[arg(long, default_value_t = 20)]
        users: usize,
        /// Bytes of incompressible text added to every row (1000 makes the large table
        /// about 1 GiB of Parquet).
        #[arg(long, default_value_t = 0)]
        payload: usize,
        /// Tables of each size built and dropped; the medians are compared.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// `kalamctl verify` vs a bare checksum-verified iteration of every column family, on
    /// the same directory (the defaults make about 1 GiB of RocksDB files).
    Verify {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long, default_value_t = 20)]
        users: usize,
        /// Bytes of incompressible text per row.
        #[arg(long, default_value_t = 1000)]
        payload: usize,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// `migrate apply` on a G2 directory with many tables, vs a raw read and write of the same
    /// catalog keys; and apply at two row counts (rows are not rewritten).
    Migrate {
        #[arg(long, default_value_t = 100_000)]
        tables: usize,
        /// Tables that have a data column family; the rest are rows of dropped tables. RocksDB
        /// keeps files and memory per column family: 10,000 already exhausts 20,000 file
        /// descriptors.
        #[arg(long, default_value_t = 2_000)]
        data_tables: usize,
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long, default_value_t = 10_000)]
        few_rows: usize,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// `backup create` and `backup restore` vs `cp -r` of the same data directory, and an
    /// incremental backup after a 1% change vs the full one (the defaults make about 1 GB).
    /// Put the scratch data on a real disk with KALAMDB_BENCH_DIR (default: the current
    /// directory).
    Backup {
        #[arg(long, default_value_t = 1_100_000)]
        rows: usize,
        #[arg(long, default_value_t = 20)]
        users: usize,
        /// Bytes of incompressible text per row.
        #[arg(long, default_value_t = 1000)]
        payload: usize,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Spread the hot half over this many tables (the 1% change still goes into one).
        #[arg(long, default_value_t = 1)]
        hot_tables: usize,
    },
    /// A soak of the real kalamd: `clients` clients mixing INSERT, point SELECT, scans and
    /// FLUSH, and an online backup every bucket; errors, p50/p99 and kalamd's RSS per bucket.
    /// Needs `cargo build --release -p kalamd`. CI does not run it.
    Soak {
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        #[arg(long, default_value_t = 60)]
        bucket_seconds: u64,
    },
    /// kalamd HTTP INSERT with `storage.sync_writes` on (the default) against off.
    /// Needs `cargo build --release -p kalamd`.
    SyncWrites {
        #[arg(long, default_value_t = 100)]
        statements_per_worker: usize,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Flush of a user table to an S3 location on a loopback server (moto's) vs to a local
    /// directory, and vs uploading the same files straight to the server.
    FlushS3 {
        #[arg(long, default_value_t = 1000)]
        mb: usize,
        #[command(flatten)]
        rows: WideRows,
    },
    /// Flush of a user table at two sizes: time and the peak resident set during the flush.
    /// Put the scratch data on a real disk with KALAMDB_BENCH_DIR.
    Flush {
        #[arg(long, default_value_t = 200)]
        small_mb: usize,
        #[arg(long, default_value_t = 2000)]
        large_mb: usize,
        #[command(flatten)]
        rows: WideRows,
    },
    /// Single-row INSERTs into a table while it is being flushed: their latency, against the
    /// same INSERTs with no flush running. Put the scratch data on a real disk with
    /// KALAMDB_BENCH_DIR.
    FlushWrites {
        #[arg(long, default_value_t = 500)]
        mb: usize,
        #[command(flatten)]
        rows: WideRows,
    },
    /// Live queries on the release kalamd: change latency with 1, 100 and 10,000
    /// subscriptions, and the INSERT rate with them against none.
    /// Needs `cargo build --release -p kalamd`.
    Live {
        /// Subscription counts to measure (each also measured against none).
        #[arg(long, value_delimiter = ',', default_value = "1,100,10000")]
        subscriptions: Vec<usize>,
        /// INSERT statements per level.
        #[arg(long, default_value_t = 2000)]
        inserts: usize,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// A full scan (count and sum) over the same rows hot and flushed, interleaved.
    Scan {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Point-SELECT latency by primary key on a user table: the fast path, the same lookup
    /// planned by DataFusion, a direct store get, and a flushed row; interleaved rounds.
    PointSelect {
        #[command(flatten)]
        data: Lookups,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
}

/// The rows a flush bench writes: `payload` bytes of incompressible text each, over `users`
/// users; `repeat` rounds.
#[derive(Debug, Args)]
struct WideRows {
    /// Bytes of incompressible text per row.
    #[arg(long, default_value_t = 1000)]
    payload: usize,
    #[arg(long, default_value_t = 20)]
    users: usize,
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

/// A user table of `rows` rows over `users` users, and `queries` point lookups into it.
#[derive(Debug, Args)]
struct Lookups {
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    #[arg(long, default_value_t = 100)]
    users: usize,
    #[arg(long, default_value_t = 2_000)]
    queries: usize,
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.bench {
            Bench::Insert {
                rows,
                batch,
                users,
                repeat,
            } => insert::run(rows, batch, users, repeat).await,
            Bench::Drop {
                small,
                large,
                users,
                payload,
                repeat,
            } => {
                drop::run(drop::Plan {
                    small,
                    large,
                    users,
                    payload,
                    repeat,
                })
                .await
            }
            Bench::Verify {
                rows,
                users,
                payload,
                repeat,
            } => verify::run(rows, users, payload, repeat).await,
            Bench::Migrate {
                tables,
                data_tables,
                rows,
                few_rows,
                repeat,
            } => migrate::run(migrate::Plan {
                tables,
                data_tables,
                rows,
                few_rows,
                repeat,
            }),
            Bench::Backup {
                rows,
                users,
                payload,
                repeat,
                hot_tables,
            } => {
                backup::run(backup::Plan {
                    rows,
                    users,
                    payload,
                    repeat,
                    hot_tables,
                })
                .await
            }
            Bench::Soak {
                clients,
                seconds,
                bucket_seconds,
            } => soak::run(soak::Plan {
                clients,
                seconds,
                bucket_seconds,
            }),
            Bench::SyncWrites {
                statements_per_worker,
                batch,
                repeat,
            } => sync_writes::run(statements_per_worker, batch, repeat),
            Bench::FlushWrites { mb, rows } => {
                flush_writes::run(mb, rows.payload, rows.users, rows.repeat).await
            }
            Bench::Flush {
                small_mb,
                large_mb,
                rows,
            } => {
                flush::run(flush::Plan {
                    small_mb,
                    large_mb,
                    payload: rows.payload,
                    users: rows.users,
                    repeat: rows.repeat,
                })
                .await
            }
            Bench::Live {
                subscriptions,
                inserts,
                repeat,
            } => live::run(&subscriptions, inserts, repeat).await,
            Bench::Scan { rows, repeat } => scan::run(rows, repeat).await,
            Bench::FlushS3 { mb, rows } => {
                flush_s3::run(flush_s3::Plan {
                    mb,
                    payload: rows.payload,
                    users: rows.users,
                    repeat: rows.repeat,
                })
                .await
            }
            Bench::PointSelect { data, repeat } => {
                point_select::run(data.rows, data.users, data.queries, repeat).await
            }
            Bench::Http {
                data,
                statements,
                batch,
                repeat,
            } => {
                http::run(
                    data.rows,
                    data.users,
                    data.queries,
                    statements,
                    batch,
                    repeat,
                )
                .await
            }
        }
    });
    if let Err(e) = result {
        eprintln!("kalamdb-bench: error: {e}");
        std::process::exit(1);
    }
}
