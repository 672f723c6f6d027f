//! `kalamctl verify [--repair] [--fast]`: one integrity scan across every layer.

use std::path::Path;

use kalamdb_core::Engine;
use kalamdb_verify::{Report, VerifyOptions};

use serde_json::json;

use crate::cli::{Cli, Format};
use crate::exit::{CliError, ExitCode};
use crate::output::{human_bytes, print_json};
use crate::progress::count_bar;

pub fn run(cli: &Cli, dir: &Path, opts: VerifyOptions) -> Result<ExitCode, CliError> {
    let engine = Engine::open_for_verify(dir, opts.repair)?;
    // The scan reports the total with its first progress call.
    let bar = count_bar(cli, "verifying", 0);
    let progress = |done: u64, total: u64, bytes: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
            bar.set_message(format!("column families, {} read", human_bytes(bytes)));
        }
    };
    let report = kalamdb_verify::verify(&engine, opts, &progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = report?;
    match cli.format {
        Format::Json => print_json(&json!(report)),
        Format::Table => print_text(cli, &report),
    }
    // After --repair the findings are those of a second scan: the exit code says what is
    // left, never what was fixed.
    Ok(if report.has_errors() {
        ExitCode::Integrity
    } else if report.has_warnings() {
        ExitCode::Warnings
    } else {
        ExitCode::Ok
    })
}

fn print_text(cli: &Cli, report: &Report) {
    for f in &report.findings {
        println!(
            "{:<7} {}  {}\n        {}\n        fix: {}",
            format!("{:?}", f.severity).to_lowercase(),
            f.code.as_str(),
            f.object,
            f.message,
            f.fix
        );
    }
    for change in &report.repaired {
        println!("repaired: {change}");
    }
    for skipped in &report.skipped {
        println!("skipped: {skipped}");
    }
    if cli.quiet {
        return;
    }
    let s = &report.summary;
    let verdict = match (s.errors, s.warnings) {
        (0, 0) => "clean".to_string(),
        (e, w) => format!("{e} error(s), {w} warning(s)"),
    };
    eprintln!(
        "verify: {verdict}; {} column families, {} table(s), {} key(s) ({}), {} Parquet file(s) in {} ms",
        s.column_families,
        s.tables,
        s.keys_scanned,
        human_bytes(s.bytes_scanned),
        s.parquet_files,
        s.duration_ms
    );
}
