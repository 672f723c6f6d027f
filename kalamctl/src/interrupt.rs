//! SIGINT and SIGTERM for long commands (backup, restore, verify of backups, table drop, jobs
//! resume): the first signal sets a flag that the running job checks at its next safe point,
//! where it stops cleanly (exit 5); a second one ends the process at once (the next run
//! cleans up what is left).

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

/// Turns SIGINT and SIGTERM into the flag, and returns it.
pub fn interruptible() -> &'static AtomicBool {
    let handler: extern "C" fn(libc::c_int) = on_interrupt;
    // SAFETY: the handler only touches an atomic and calls _exit.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
    &INTERRUPTED
}
