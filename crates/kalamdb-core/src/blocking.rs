//! Long synchronous work (file I/O, fsyncs, deletes, reading a table's two tiers) called
//! from async code.

/// Runs `work` so that it does not stall the runtime's other tasks: on a multi-threaded
/// runtime (kalamd) the worker hands its queue to another thread while `work` runs; on a
/// current-thread runtime (kalamctl, one command at a time) or none, `work` simply runs.
pub fn run<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
