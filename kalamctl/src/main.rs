//! `kalamctl`: the KalamDB admin tool. See `specs/cli.md` for commands, JSON shapes and exit codes.

mod cli;
mod commands;
mod exit;
mod output;
mod progress;

use clap::Parser;

fn main() {
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
