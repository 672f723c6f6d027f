//! Flush of a user table at two sizes ten times apart: time, throughput and the process's
//! peak resident set during the flush (reset just before it), to show that a flush's memory
//! is bounded by a batch file's worth of rows, not by the table. Sizes alternate, `repeat`
//! rounds; each trial on a fresh database.

use std::time::Instant;

use crate::datagen::filled_wide_user_table;
use crate::report::{emit, median, proc_status_kib, reset_peak_rss};

pub struct Plan {
    pub small_mb: usize,
    pub large_mb: usize,
    pub payload: usize,
    pub users: usize,
    pub repeat: usize,
}

struct Trial {
    secs: f64,
    peak_mib: f64,
    growth_mib: f64,
}

async fn trial(mb: usize, plan: &Plan) -> Result<Trial, String> {
    let (_tmp, engine, rows) =
        filled_wide_user_table(mb, plan.payload, plan.users, None, "").await?;
    let pid = std::process::id();
    reset_peak_rss()?;
    let before = proc_status_kib(pid, "VmRSS");
    let started = Instant::now();
    let report = engine
        .flush_table("b", "t")
        .await
        .map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let peak = proc_status_kib(pid, "VmHWM");
    if report.rows as usize != rows.div_ceil(plan.users.max(1)) * plan.users {
        return Err(format!("flushed {} rows of {rows}", report.rows));
    }
    Ok(Trial {
        secs,
        peak_mib: peak as f64 / 1024.0,
        growth_mib: peak.saturating_sub(before) as f64 / 1024.0,
    })
}

pub async fn run(plan: Plan) -> Result<(), String> {
    let (mut small, mut large) = (Vec::new(), Vec::new());
    for r in 0..plan.repeat.max(1) {
        if r % 2 == 0 {
            small.push(trial(plan.small_mb, &plan).await?);
            large.push(trial(plan.large_mb, &plan).await?);
        } else {
            large.push(trial(plan.large_mb, &plan).await?);
            small.push(trial(plan.small_mb, &plan).await?);
        }
    }
    let fig = |v: &[Trial], f: fn(&Trial) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    let mut figures = serde_json::Map::new();
    println!(
        "flush: {} rounds, {} users, {} B payload",
        small.len(),
        plan.users,
        plan.payload
    );
    for (name, mb, v) in [
        ("small", plan.small_mb, &small),
        ("large", plan.large_mb, &large),
    ] {
        let (secs, peak, growth) = (
            fig(v, |t| t.secs),
            fig(v, |t| t.peak_mib),
            fig(v, |t| t.growth_mib),
        );
        println!(
            "  {mb:>6} MB  {secs:>7.2} s  {:>7.1} MB/s  peak RSS {peak:>7.1} MiB (+{growth:.1} MiB during the flush)",
            mb as f64 / secs
        );
        figures.insert(format!("{name}_mb"), mb.into());
        figures.insert(format!("{name}_secs"), secs.into());
        figures.insert(format!("{name}_peak_rss_mib"), peak.into());
        figures.insert(format!("{name}_rss_growth_mib"), growth.into());
    }
    let time_ratio = fig(&large, |t| t.secs) / fig(&small, |t| t.secs).max(1e-9);
    let peak_ratio = fig(&large, |t| t.peak_mib) / fig(&small, |t| t.peak_mib).max(1e-9);
    println!("  large/small: time {time_ratio:.2}, peak RSS {peak_ratio:.2}");
    figures.insert("ratio_time_large_to_small".into(), time_ratio.into());
    figures.insert("ratio_peak_rss_large_to_small".into(), peak_ratio.into());
    emit("flush", serde_json::Value::Object(figures));
    Ok(())
}
