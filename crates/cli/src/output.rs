//! Tables for people, JSON for scripts.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// One JSON document.
    Json,
}

/// Prints `rows` under `headers` as a table, or as a JSON array of objects keyed by
/// the headers (lower-cased, spaces as underscores) with `json_rows` as the values.
pub fn print_rows(output: Output, headers: &[&str], rows: Vec<Vec<Value>>) {
    match output {
        Output::Table => {
            let mut table = Table::new();
            table
                .load_style(UTF8_BORDERS_ONLY)
                .set_content_arrangement(ContentArrangement::Disabled)
                .set_header(headers.iter().copied());
            for row in rows {
                table.add_row(row.iter().map(cell));
            }
            println!("{table}");
        }
        Output::Json => {
            let keys: Vec<String> = headers.iter().map(|h| json_key(h)).collect();
            let objects: Vec<Value> = rows
                .into_iter()
                .map(|row| Value::Object(keys.iter().cloned().zip(row).collect()))
                .collect();
            print_json(&Value::Array(objects));
        }
    }
}

/// Prints one JSON document on stdout.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into())
    );
}

/// A header as a JSON key: "End offset" -> "end_offset".
pub fn json_key(header: &str) -> String {
    header.trim().to_lowercase().replace([' ', '-'], "_")
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
