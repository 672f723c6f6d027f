//! The runtime object-store requests run on, and how the engine's synchronous code waits
//! for them.

use std::sync::OnceLock;

use crate::{CoreError, Result};

/// The runtime object-store requests run on: its own, so that synchronous engine code (on
/// any thread, in a runtime or not) can wait for them.
pub(super) fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kalamdb-object-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| CoreError::ObjectStore {
        location: "s3".into(),
        reason: format!("cannot start the object-store runtime: {e}"),
    })
}

/// Runs `f` on the object-store runtime and waits for it. Inside another runtime's thread
/// (where blocking on a runtime is refused), it waits from a short-lived thread of its own.
pub(super) fn block<F>(f: F) -> Result<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    let rt = runtime()?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(rt.block_on(f));
    }
    std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join()).map_err(|_| CoreError::ObjectStore {
        location: "s3".into(),
        reason: "an object-store request panicked".into(),
    })
}
