//! Fail points for crash and fault tests, on the `fail` crate (TiKV's fail-rs).
//!
//! They exist only in a build with the `failpoints` cargo feature, which the test suites turn
//! on; a build without it (every release binary) compiles them to nothing and ignores
//! `FAILPOINTS`. In a test build, `FAILPOINTS=point=action;...` configures them with fail-rs's
//! actions (`sleep(ms)`, `panic(msg)`, `1*panic`, ...), and `return` means: kill this
//! process with SIGKILL right here, exactly as `kill -9` would ([`point`]), or, at a fault
//! point ([`injected`]), fail this one call as the outside world could. Every point is listed
//! in `specs/format.md`.

/// Reads `FAILPOINTS`; the binaries call this once, first thing. Without the feature it does
/// nothing.
pub fn setup() {
    #[cfg(feature = "failpoints")]
    {
        // The scenario holds a process-wide guard; it lives as long as the process.
        std::mem::forget(fail::FailScenario::setup());
    }
}

/// A fail point named `name`.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
pub fn point(name: &str) {
    #[cfg(feature = "failpoints")]
    fail::fail_point!(name, |_| kill_self());
}

/// A fault point named `name`: `true` when `FAILPOINTS` sets it to `return` for this call
/// (`2*return`: the first two calls), so that the caller acts as if the outside world had
/// failed it: a server refusing a request, say. Always `false` without the feature.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
pub fn injected(name: &str) -> bool {
    #[cfg(feature = "failpoints")]
    fail::fail_point!(name, |_| true);
    false
}

/// Whether this build honours fail points.
pub const ENABLED: bool = cfg!(feature = "failpoints");

#[cfg(feature = "failpoints")]
fn kill_self() {
    // SAFETY: getpid and kill have no preconditions; SIGKILL does not return.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}
