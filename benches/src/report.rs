//! Reading criterion's results back for the summaries the benchmarks print
//! (and `scripts/benchmarks` puts into BENCHMARKS.md).
// Criterion's result files and the environment are the bench's business.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::{Path, PathBuf};

/// Where criterion writes its results: `CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else the workspace's `target/criterion`.
pub fn output_directory() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion")
}

/// A duration in nanoseconds, in the unit that suits it.
pub fn human(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// One benchmark's spread.
pub struct Stats {
    /// Criterion's estimate of the median, ns.
    pub median: f64,
    /// Median absolute deviation, ns.
    pub mad: f64,
    /// 10th percentile of the per-sample means, ns.
    pub p10: f64,
    /// 90th percentile of the per-sample means, ns.
    pub p90: f64,
}

/// The stats of benchmark `id` (`group/name`, where the group may itself
/// hold '/') from criterion's files in `dir`; `None` when it did not run.
pub fn stats(dir: &Path, id: &str) -> Option<Stats> {
    // Criterion keeps a group's results in a directory named after the
    // group with each '/' replaced by '_'.
    let (group, name) = id.rsplit_once('/')?;
    let files = dir.join(group.replace('/', "_")).join(name).join("new");
    let read = |file: &str| -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(files.join(file)).ok()?;
        serde_json::from_str(&text).ok()
    };
    let estimates = read("estimates.json")?;
    let sample = read("sample.json")?;
    let point = |k: &str| estimates[k]["point_estimate"].as_f64();
    let iters = sample["iters"].as_array()?;
    let times = sample["times"].as_array()?;
    let mut per_iter: Vec<f64> = iters
        .iter()
        .zip(times)
        .filter_map(|(n, t)| Some(t.as_f64()? / n.as_f64()?))
        .collect();
    if per_iter.is_empty() {
        return None;
    }
    per_iter.sort_by(f64::total_cmp);
    let pct = |p: f64| per_iter[((per_iter.len() - 1) as f64 * p).round() as usize];
    Some(Stats {
        median: point("median")?,
        mad: point("median_abs_dev")?,
        p10: pct(0.1),
        p90: pct(0.9),
    })
}

/// Prints a summary and, when `BENCH_SUMMARY` names a file, writes it there
/// too (`scripts/benchmarks` collects these into BENCHMARKS.md).
#[allow(clippy::print_stdout, clippy::print_stderr)]
pub fn emit(summary: &str) {
    print!("{summary}");
    if let Some(file) = std::env::var_os("BENCH_SUMMARY") {
        if let Err(e) = std::fs::write(&file, summary) {
            eprintln!(
                "cannot write the summary to {}: {e}",
                Path::new(&file).display()
            );
        }
    }
}
