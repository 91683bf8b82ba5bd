//! Printing data as text, JSON or YAML.

use super::args::Output;
use super::{CmdResult, Code, Failure};

/// Prints `value` as JSON or YAML, or `text` for text output.
pub(crate) fn print(output: Output, text: &str, value: &impl serde::Serialize) -> CmdResult {
    match output {
        Output::Text => {
            if !text.is_empty() {
                println!("{}", text.trim_end_matches('\n'));
            }
        }
        Output::Json => {
            let json = serde_json::to_string_pretty(value)
                .map_err(|e| Failure::new(Code::Refused, format!("cannot write JSON: {e}")))?;
            println!("{json}");
        }
        Output::Yaml => {
            let yaml = serde_saphyr::to_string(value)
                .map_err(|e| Failure::new(Code::Refused, format!("cannot write YAML: {e}")))?;
            print!("{yaml}");
        }
    }
    Ok(())
}

/// A table with left-aligned columns.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// RFC 3339 in UTC, whole seconds.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .truncate_to_second()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// `1h2m3s`-style rendering of a positive duration, to the second.
pub(crate) fn human_duration(d: time::Duration) -> String {
    let secs = d.whole_seconds().max(0);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}
