//! `sagitta merge`: one table from the outputs of several runs (the shards of an array job, a
//! run and its resumption): record folders (`--out`) and JSON-lines files (`--jsonl`) into one
//! JSON-lines file, CSV tables (`--csv`) into one CSV. Each image appears once: its analysed
//! record or row wins over an error one, and among equals the newest record (by timestamp) or
//! the row of the table given last.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use super::output;
use crate::report::csv_field;

/// The command-line arguments of `sagitta merge`.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// Record folders (`analyze --out`), JSON-lines files (`analyze --jsonl`) or CSV tables
    /// (`analyze --csv`, all with this version's header).
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Write the merged records here, one per line (from record folders and JSON-lines files).
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// Write the merged table here (from CSV tables).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write the merged table here as Parquet (from CSV tables; the columns of
    /// `analyze --parquet`).
    #[arg(long, value_name = "FILE")]
    pub parquet: Option<PathBuf>,
}

/// What a merge found and kept.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MergeSummary {
    pub images: usize,
    pub duplicates: usize,
    pub errors: usize,
}

/// Whether a record (or row) status is an analysed one.
fn analysed(status: &str) -> bool {
    matches!(status, "ok" | "flagged")
}

/// Whether `candidate` replaces `kept` for the same image.
fn replaces(candidate: (&str, &str), kept: (&str, &str)) -> bool {
    let (candidate_status, candidate_time) = candidate;
    let (kept_status, kept_time) = kept;
    match (analysed(candidate_status), analysed(kept_status)) {
        (true, false) => true,
        (false, true) => false,
        _ => candidate_time >= kept_time,
    }
}

fn read_text(path: &Path) -> Result<String, String> {
    let bytes = crate::util::read_regular_file(path, 4 << 30, "merge inputs")
        .map_err(|error| format!("{}: {error}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))
}

/// The records of a folder's `*.json` files or a JSON-lines file.
fn records_of(path: &Path) -> Result<Vec<Value>, String> {
    let parse = |text: &str, source: &dyn std::fmt::Display| {
        serde_json::from_str::<Value>(text).map_err(|error| format!("{source}: {error}"))
    };
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|error| format!("{}: {error}", path.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|file| file.extension().is_some_and(|e| e == "json"))
            .filter(|file| {
                !file
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        return files
            .iter()
            .map(|file| parse(&read_text(file)?, &file.display()))
            .collect();
    }
    read_text(path)?
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| parse(line, &format!("{}:{}", path.display(), number + 1)))
        .collect()
}

/// Merges records: one per image.
pub fn merge_records(records: Vec<Value>) -> (Vec<Value>, MergeSummary) {
    let mut summary = MergeSummary::default();
    let mut kept: BTreeMap<String, Value> = BTreeMap::new();
    for record in records {
        let Some(image) = record["image"].as_str().map(str::to_string) else {
            continue;
        };
        let key = |record: &Value| {
            (
                record["status"].as_str().unwrap_or("").to_string(),
                record["timestamp"].as_str().unwrap_or("").to_string(),
            )
        };
        match kept.get(&image) {
            Some(existing) => {
                summary.duplicates += 1;
                let (new, old) = (key(&record), key(existing));
                if replaces((&new.0, &new.1), (&old.0, &old.1)) {
                    kept.insert(image, record);
                }
            }
            None => {
                kept.insert(image, record);
            }
        }
    }
    summary.images = kept.len();
    summary.errors = kept
        .values()
        .filter(|record| !analysed(record["status"].as_str().unwrap_or("")))
        .count();
    (kept.into_values().collect(), summary)
}

/// The fields of a CSV text (RFC 4180: quoted fields may hold commas, quotes and line breaks).
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// Merges CSV tables with the same header: one row per image (the first column), an analysed
/// row over an error row, else the row read last.
pub fn merge_tables(
    tables: &[(PathBuf, String)],
) -> Result<(Vec<Vec<String>>, MergeSummary), String> {
    let mut header: Option<Vec<String>> = None;
    let mut summary = MergeSummary::default();
    let mut kept: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
    let mut order = 0;
    for (path, text) in tables {
        let mut rows = parse_csv(text).map_err(|error| format!("{}: {error}", path.display()))?;
        if rows.is_empty() {
            continue;
        }
        let this_header = rows.remove(0);
        match &header {
            None => header = Some(this_header),
            Some(first) if *first != this_header => {
                return Err(format!(
                    "{}: its header differs from the first table's (a table of another sagitta \
                     version or another kind of table)",
                    path.display()
                ))
            }
            Some(_) => {}
        }
        let status_column = header
            .as_ref()
            .and_then(|header| header.iter().position(|name| name == "status"))
            .ok_or_else(|| format!("{}: no status column", path.display()))?;
        for row in rows {
            let Some(image) = row.first().cloned() else {
                continue;
            };
            order += 1;
            let status = row.get(status_column).cloned().unwrap_or_default();
            match kept.get(&image) {
                Some((_, existing)) => {
                    summary.duplicates += 1;
                    let old_status = existing.get(status_column).cloned().unwrap_or_default();
                    if replaces((&status, ""), (&old_status, "")) {
                        kept.insert(image, (order, row));
                    }
                }
                None => {
                    kept.insert(image, (order, row));
                }
            }
        }
    }
    let mut merged: Vec<Vec<String>> = header.into_iter().collect();
    let status_column = merged
        .first()
        .and_then(|header| header.iter().position(|name| name == "status"))
        .unwrap_or(1);
    summary.images = kept.len();
    summary.errors = kept
        .values()
        .filter(|(_, row)| !analysed(row.get(status_column).map_or("", String::as_str)))
        .count();
    merged.extend(kept.into_values().map(|(_, row)| row));
    Ok((merged, summary))
}

fn run(args: &MergeArgs) -> Result<MergeSummary, String> {
    if args.jsonl.is_none() && args.csv.is_none() && args.parquet.is_none() {
        return Err(
            "say where the merged output goes: --jsonl FILE, --csv FILE and/or --parquet FILE"
                .into(),
        );
    }
    let is_csv = |path: &Path| {
        path.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    };
    let (tables, records): (Vec<&PathBuf>, Vec<&PathBuf>) =
        args.inputs.iter().partition(|path| is_csv(path));
    for output_path in args.jsonl.iter().chain(&args.csv).chain(&args.parquet) {
        if args.inputs.iter().any(|input| input == output_path) {
            return Err(format!(
                "{} is an input of the merge and would be overwritten",
                output_path.display()
            ));
        }
    }
    let mut summary = MergeSummary::default();
    match (&args.jsonl, records.is_empty()) {
        (Some(jsonl), false) => {
            let mut all = Vec::new();
            for path in records {
                all.extend(records_of(path)?);
            }
            let (merged, counted) = merge_records(all);
            let mut text = String::new();
            for record in merged {
                text.push_str(&record.to_string());
                text.push('\n');
            }
            output::write_atomic(jsonl, text.as_bytes())
                .map_err(|error| format!("{}: {error}", jsonl.display()))?;
            summary = counted;
        }
        (Some(_), true) => return Err("--jsonl needs record folders or JSON-lines files".into()),
        (None, false) => {
            return Err("record folders and JSON-lines files merge into --jsonl FILE".into())
        }
        (None, true) => {}
    }
    let wants_table = args.csv.is_some() || args.parquet.is_some();
    match (wants_table, tables.is_empty()) {
        (true, false) => {
            let texts = tables
                .iter()
                .map(|path| read_text(path).map(|text| ((*path).clone(), text)))
                .collect::<Result<Vec<_>, _>>()?;
            let (mut rows, counted) = merge_tables(&texts)?;
            if let Some(csv) = &args.csv {
                let mut text = String::new();
                for row in &rows {
                    let cells: Vec<String> = row.iter().map(|cell| csv_field(cell)).collect();
                    text.push_str(&cells.join(","));
                    text.push('\n');
                }
                output::write_atomic(csv, text.as_bytes())
                    .map_err(|error| format!("{}: {error}", csv.display()))?;
            }
            if let Some(parquet) = &args.parquet {
                if !rows.is_empty() {
                    let header = rows.remove(0);
                    super::parquet::write_table(parquet, &header, &rows)?;
                }
            }
            if args.jsonl.is_none() {
                summary = counted;
            }
        }
        (true, true) => {
            return Err("--csv and --parquet need CSV tables (files ending in .csv)".into())
        }
        (false, false) => return Err("CSV tables merge into --csv or --parquet FILE".into()),
        (false, true) => {}
    }
    Ok(summary)
}

/// `sagitta merge`: exit 0 when merged, 2 when it could not be.
pub fn main(args: &MergeArgs) -> ExitCode {
    match run(args) {
        Ok(summary) => {
            eprintln!(
                "sagitta: {} image(s), {} duplicate(s) dropped, {} without an analysis",
                summary.images, summary.duplicates, summary.errors
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sagitta merge: {error}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_round_trip_through_the_parser() {
        let text =
            "image,status,warnings\n\"a,b.png\",ok,\"say \"\"hi\"\"\nthere\"\nc.png,error,\n";
        let rows = parse_csv(text).unwrap();
        assert_eq!(rows[1], ["a,b.png", "ok", "say \"hi\"\nthere"]);
        assert_eq!(rows[2], ["c.png", "error", ""]);
        assert!(parse_csv("\"open").is_err());
    }

    #[test]
    fn analysed_records_win_then_the_newest() {
        let record = |image: &str, status: &str, time: &str| serde_json::json!({"image": image, "status": status, "timestamp": time});
        let (merged, summary) = merge_records(vec![
            record("a", "ok", "2026-01-01T00:00:00Z"),
            record("a", "error", "2026-02-01T00:00:00Z"),
            record("b", "error", "2026-01-01T00:00:00Z"),
            record("b", "flagged", "2026-01-01T00:00:00Z"),
            record("c", "ok", "2026-01-01T00:00:00Z"),
            record("c", "flagged", "2026-03-01T00:00:00Z"),
        ]);
        assert_eq!(
            summary,
            MergeSummary {
                images: 3,
                duplicates: 3,
                errors: 0
            }
        );
        let statuses: Vec<&str> = merged
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["ok", "flagged", "flagged"]);
    }
}
