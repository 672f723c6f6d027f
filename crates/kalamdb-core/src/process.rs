//! This process, and others by pid: the identity the data directory's lock and job rows
//! record ([`ProcessIdentity`]), and whether a recorded process still runs.

use std::sync::OnceLock;

use kalamdb_store::now_ms;

pub use kalamdb_sql::ProcessIdentity;

/// This process: its host, pid and start time (fixed at the first call).
pub fn this_process() -> ProcessIdentity {
    static STARTED: OnceLock<i64> = OnceLock::new();
    ProcessIdentity {
        host: hostname(),
        pid: std::process::id(),
        started_at: *STARTED.get_or_init(now_ms),
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether a process with this pid runs on this host.
pub fn is_alive(pid: u32) -> bool {
    pid == std::process::id() || std::path::Path::new("/proc").join(pid.to_string()).exists()
}

/// Whether `who` is this very process (not merely one that reused its pid).
pub fn is_this_process(who: &ProcessIdentity) -> bool {
    *who == this_process()
}
