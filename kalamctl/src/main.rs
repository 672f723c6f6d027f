//! `kalamctl`: the KalamDB admin tool. See `specs/cli.md` for commands, JSON shapes and exit codes.

/// mimalloc, not glibc's malloc: allocation-heavy work (a flush, INSERTs) runs 1.2-1.7x as
/// fast with it (`specs/benchmarks.md`, *The allocator*).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod commands;
mod exit;
mod interrupt;
mod output;
mod progress;
mod remote;

use clap::Parser;

fn main() {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`kalamctl jobs list | head`) instead of failing on a broken pipe.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    kalamdb_core::fail::setup();
    // The job types this binary runs beyond the engine's own.
    kalamdb_backup::register();
    let cli = cli::Cli::parse();
    let code = match commands::run(&cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kalamctl: error: {err}");
            exit::code_for(&err)
        }
    };
    std::process::exit(code as i32);
}
