//! Progress bars for long operations: on a terminal only, on stderr, never with JSON output.

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use kalamdb_backup as backup;
use kalamdb_core::JobRecord;
use kalamdb_core::jobs::Observer;

use crate::cli::{Cli, Format};

/// A bar that follows a job's progress, or nothing when output is JSON, quiet, or not a TTY.
pub fn job_bar(cli: &Cli, label: &str) -> Option<(ProgressBar, Observer)> {
    if cli.quiet || cli.format == Format::Json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(1000);
    bar.set_style(style("{prefix} [{bar:30}] {percent:>3}% {msg} ({elapsed})"));
    bar.set_prefix(label.to_string());
    let follower = bar.clone();
    let observer: Observer = Arc::new(move |job: &JobRecord| {
        if let Some(p) = &job.progress {
            follower.set_position((p.fraction.clamp(0.0, 1.0) * 1000.0) as u64);
            follower.set_message(format!(
                "{} {}/{} file(s), {}",
                job.step.as_deref().unwrap_or(job.status.as_str()),
                p.items_done,
                p.items_total,
                indicatif::HumanBytes(p.bytes_done)
            ));
        }
    });
    Some((bar, observer))
}

/// A bar over a known number of steps, or nothing when output is JSON, quiet, or not a TTY.
pub fn count_bar(cli: &Cli, label: &str, total: u64) -> Option<ProgressBar> {
    if cli.quiet || cli.format == Format::Json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(style(STEPS));
    bar.set_prefix(label.to_string());
    Some(bar)
}

const STEPS: &str = "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})";
const BYTES: &str =
    "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// A bar for backup runs, or nothing when output is JSON, quiet, or not a TTY. Copying shows
/// bytes, throughput and ETA; the check after a restore (one pass that verifies and counts
/// each column family) shows its steps.
pub fn bytes_bar(cli: &Cli, label: &str) -> Option<(ProgressBar, backup::Observer)> {
    if cli.quiet || cli.format == Format::Json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(style(BYTES));
    bar.set_prefix(label.to_string());
    let follower = bar.clone();
    let label = label.to_string();
    let phase = std::sync::Mutex::new(backup::Phase::Copying);
    let observer: backup::Observer = Arc::new(move |t: backup::Transfer| {
        if let Ok(mut last) = phase.lock()
            && *last != t.phase
        {
            // A new phase: its own position, rate and ETA.
            *last = t.phase;
            follower.reset();
            follower.set_style(style(match t.phase {
                backup::Phase::Copying => BYTES,
                _ => STEPS,
            }));
        }
        match t.phase {
            backup::Phase::Copying => {
                follower.set_prefix(label.clone());
                follower.set_length(t.bytes_total);
                follower.set_position(t.bytes_done);
                follower.set_message(format!("{}/{} files", t.files_done, t.files_total));
            }
            backup::Phase::Verifying => {
                follower.set_prefix("verifying");
                follower.set_length(t.files_total);
                follower.set_position(t.files_done);
                follower.set_message(format!(
                    "column families, {} read",
                    indicatif::HumanBytes(t.bytes_done)
                ));
            }
        }
    });
    Some((bar, observer))
}
