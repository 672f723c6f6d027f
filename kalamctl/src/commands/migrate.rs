//! `kalamctl migrate status|plan|apply|rollback|finalize` and `kalamctl upgrade-check`.

use std::path::Path;

use kalamdb_migrate::{self as migrate, ApplyOptions, PlannedStep};
use serde_json::json;

use crate::cli::{Cli, Format, MigrateCommand};
use crate::exit::{CliError, ExitCode};
use crate::output::{human_time, print_json, render_pairs};
use crate::progress::job_bar;

pub fn run(cli: &Cli, dir: &Path, command: &MigrateCommand) -> Result<ExitCode, CliError> {
    match command {
        MigrateCommand::Status => status(cli, dir),
        MigrateCommand::Plan => plan(cli, dir),
        MigrateCommand::Apply {
            plan,
            skip_invalid,
            to,
        } => apply(cli, dir, plan.clone(), *skip_invalid, to.clone()),
        MigrateCommand::Rollback => cleanup(cli, migrate::rollback(dir)?),
        MigrateCommand::Finalize => cleanup(cli, migrate::finalize(dir)?),
    }
}

fn status(cli: &Cli, dir: &Path) -> Result<ExitCode, CliError> {
    let s = migrate::status(dir)?;
    if cli.format == Format::Json {
        print_json(&json!(s));
        return Ok(ExitCode::Ok);
    }
    let mut pairs = vec![
        ("data directory", s.data_dir.clone()),
        ("state", s.state.to_string()),
        (
            "generation",
            s.generation.map_or("-".into(), |g| g.as_str().to_string()),
        ),
        (
            "format",
            match (&s.format_version, &s.written_by) {
                (Some(v), Some(w)) => format!("{v} (written by {w})"),
                _ => "none (no format marker)".into(),
            },
        ),
    ];
    for a in &s.applied {
        let drift = a
            .drift
            .as_ref()
            .map_or(String::new(), |d| format!("  DRIFT: {d}"));
        pairs.push((
            "applied",
            format!(
                "{} {} {} at {}{drift}",
                a.id,
                a.name,
                a.checksum,
                human_time(a.applied_at)
            ),
        ));
    }
    if let Some(l) = &s.layout {
        pairs.push(("layout", layout_line(l)));
    }
    for p in &s.pending {
        pairs.push((
            "pending",
            format!("{} {} ({} -> {})", p.id, p.name, p.from, p.to),
        ));
    }
    if let Some(c) = &s.checkpoint {
        pairs.push(("checkpoint", format!("{c} (rollback possible)")));
    }
    if let Some(at) = s.finalized_at {
        pairs.push(("finalized", human_time(at)));
    }
    pairs.push(("next", s.next.clone()));
    println!("{}", render_pairs(&pairs));
    Ok(ExitCode::Ok)
}

/// The conversion of the original engine's layout, in one line.
fn layout_line(l: &migrate::LayoutPlan) -> String {
    let mut line = format!(
        "the original engine's layout: RocksDB files go into {} ({} hard-linked, {} copied, {} bytes copied{}); the originals stay in place for rollback until finalize",
        l.database,
        l.linked,
        l.copied,
        l.copied_bytes,
        if l.carried.is_empty() {
            String::new()
        } else {
            format!(", with {}/", l.carried.join("/, "))
        }
    );
    if let Some(why) = &l.blocked {
        line.push_str(&format!(
            "; NOT POSSIBLE IN PLACE: {why}: use `apply --to NEW_DIR`"
        ));
    }
    line
}

fn print_steps(steps: &[PlannedStep]) {
    for s in steps {
        println!(
            "{} {} ({} -> {})",
            s.step.id, s.step.name, s.step.from, s.step.to
        );
        if s.report.changes.is_empty() {
            println!("  no changes");
        }
        for (entity, actions) in &s.report.changes {
            for (action, n) in actions {
                println!("  {entity}: {n} {action}");
            }
        }
        for r in &s.report.repaired {
            println!("  repaired: {r}");
        }
        for n in &s.report.notes {
            println!("  note: {n}");
        }
        for i in &s.report.invalid {
            let key = if i.key.is_empty() {
                String::new()
            } else {
                format!(" key {:?}", i.key)
            };
            println!("  INVALID {}{key}: {}", i.column_family, i.reason);
        }
    }
}

fn plan(cli: &Cli, dir: &Path) -> Result<ExitCode, CliError> {
    let p = migrate::plan(dir)?;
    let code = if p.invalid > 0 {
        ExitCode::Integrity
    } else {
        ExitCode::Ok
    };
    if cli.format == Format::Json {
        print_json(&json!(p));
        return Ok(code);
    }
    match p.generation {
        None => println!("{} is current: nothing to migrate", p.data_dir),
        Some(g) => {
            println!(
                "plan for {} (generation {}): {} step(s)",
                p.data_dir,
                g.as_str(),
                p.steps.len()
            );
            if let Some(l) = &p.layout {
                println!("layout: {}", layout_line(l));
            }
            print_steps(&p.steps);
            if p.invalid > 0 {
                println!(
                    "{} record(s) cannot be converted: `apply` refuses unless --skip-invalid",
                    p.invalid
                );
            }
            println!(
                "plan hash: {}  (kalamctl migrate apply --data-dir {} --plan {})",
                p.hash, p.data_dir, p.hash
            );
        }
    }
    Ok(code)
}

fn apply(
    cli: &Cli,
    dir: &Path,
    plan_hash: Option<String>,
    skip_invalid: bool,
    to: Option<std::path::PathBuf>,
) -> Result<ExitCode, CliError> {
    let bar = job_bar(cli, "migrating");
    let (bar, observer) = match bar {
        Some((b, o)) => (Some(b), Some(o)),
        None => (None, None),
    };
    let report = migrate::apply(
        dir,
        ApplyOptions {
            plan_hash,
            skip_invalid,
            observer,
            to,
        },
    );
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = report?;
    if cli.format == Format::Json {
        print_json(&json!(report));
        return Ok(ExitCode::Ok);
    }
    if report.state == "up_to_date" {
        println!("{} is current: nothing to migrate", report.data_dir);
        return Ok(ExitCode::Ok);
    }
    if report.nested {
        println!(
            "layout: nested the original engine's RocksDB files into {}/rocksdb",
            report.data_dir
        );
    }
    if let Some(from) = &report.copied_from {
        println!(
            "copied {from} into {} and migrated the copy; {from} is untouched",
            report.data_dir
        );
    }
    print_steps(&report.steps);
    if !cli.quiet {
        eprintln!(
            "migrate: {} step(s) applied{} in {} ms (job {}); {} invalid record(s) skipped. The original is kept at {}: `kalamctl migrate rollback` restores it, `kalamctl migrate finalize` deletes it.",
            report.steps.len(),
            if report.resumed {
                ", continuing a stopped run,"
            } else {
                ""
            },
            report.duration_ms,
            report.job_id.as_deref().unwrap_or("-"),
            report.skipped_invalid,
            report.checkpoint.as_deref().unwrap_or("-")
        );
    }
    Ok(ExitCode::Ok)
}

fn cleanup(cli: &Cli, c: migrate::Cleanup) -> Result<ExitCode, CliError> {
    if cli.format == Format::Json {
        print_json(&json!(c));
        return Ok(ExitCode::Ok);
    }
    for r in &c.removed {
        println!("removed: {r}");
    }
    if !cli.quiet {
        eprintln!("migrate: {} ({})", c.state.replace('_', " "), c.data_dir);
    }
    Ok(ExitCode::Ok)
}

pub fn upgrade_check(
    cli: &Cli,
    dir: &Path,
    scratch: Option<&Path>,
    keep: bool,
    skip_invalid: bool,
) -> Result<ExitCode, CliError> {
    let report = migrate::upgrade_check(dir, scratch, keep, skip_invalid)?;
    if cli.format == Format::Json {
        print_json(&json!(report));
    } else {
        for c in &report.checks {
            println!(
                "{:<5} {:<8} {}",
                if c.ok { "ok" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        if !cli.quiet {
            eprintln!(
                "upgrade-check: {} ({}{})",
                if report.ok { "passed" } else { "FAILED" },
                report.data_dir,
                if keep {
                    format!("; migrated copy kept at {}", report.scratch)
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(if report.ok {
        ExitCode::Ok
    } else {
        ExitCode::Integrity
    })
}
