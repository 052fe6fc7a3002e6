//! `runnel perf`: throughput and latency of producing and consuming, with a progress
//! bar while running and a table (or JSON) of the results at the end.

use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::global::Global;
use crate::output::{print_json, print_rows, Output};

pub mod consume;
pub mod produce;

/// `runnel perf` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Produces records as fast as allowed and reports throughput and ack latency.
    Produce(produce::Args),
    /// Consumes a topic from the beginning and reports throughput.
    Consume(consume::Args),
}

/// Runs one `perf` subcommand.
pub async fn run(global: &Global, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Produce(args) => produce::run(global, args).await,
        Command::Consume(args) => consume::run(global, args).await,
    }
}

/// A progress bar on stderr over `total` records, or a spinner counting records when
/// the run is bounded by time instead. Hidden when stderr is not a terminal.
pub fn progress(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} records {per_sec} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {pos} records {per_sec} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A latency histogram in microseconds, 1 µs to 1 hour, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// What a perf run measured.
#[derive(Debug)]
pub struct Report {
    /// "produce" or "consume".
    pub mode: &'static str,
    /// Records sent and acknowledged (produce) or received (consume).
    pub records: u64,
    /// Payload bytes (keys and values) in those records.
    pub bytes: u64,
    /// Wall time of the measured part of the run.
    pub elapsed: Duration,
    /// Records that failed (produce errors).
    pub errors: u64,
    /// Latency per record in microseconds (produce: send to acknowledgement;
    /// consume: produce timestamp to receipt), if measured.
    pub latency: Option<Histogram<u64>>,
}

impl Report {
    /// Records per second.
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// MiB of payload per second.
    pub fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The report as JSON (latencies in milliseconds).
    pub fn to_json(&self) -> Value {
        let mut value = json!({
            "mode": self.mode,
            "records": self.records,
            "bytes": self.bytes,
            "errors": self.errors,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "records_per_sec": self.records_per_sec(),
            "mib_per_sec": self.mib_per_sec(),
        });
        if let Some(h) = &self.latency {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            value["latency_ms"] = json!({
                "min": h.min() as f64 / 1000.0,
                "p50": ms(0.50),
                "p95": ms(0.95),
                "p99": ms(0.99),
                "p99_9": ms(0.999),
                "max": h.max() as f64 / 1000.0,
                "mean": h.mean() / 1000.0,
            });
        }
        value
    }

    /// Prints the report as a table or JSON.
    pub fn print(&self, output: Output) {
        if output == Output::Json {
            print_json(&self.to_json());
            return;
        }
        let mut rows = vec![
            vec![json!("records"), json!(self.records)],
            vec![json!("errors"), json!(self.errors)],
            vec![
                json!("elapsed"),
                json!(format!("{:.2} s", self.elapsed.as_secs_f64())),
            ],
            vec![
                json!("throughput"),
                json!(format!("{:.0} records/s", self.records_per_sec())),
            ],
            vec![
                json!("bandwidth"),
                json!(format!("{:.2} MiB/s", self.mib_per_sec())),
            ],
        ];
        if let Some(h) = &self.latency {
            for (label, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p99.9", 0.999)] {
                let ms = h.value_at_quantile(q) as f64 / 1000.0;
                rows.push(vec![
                    json!(format!("latency {label}")),
                    json!(format!("{ms:.3} ms")),
                ]);
            }
            rows.push(vec![
                json!("latency max"),
                json!(format!("{:.3} ms", h.max() as f64 / 1000.0)),
            ]);
        }
        print_rows(Output::Table, &[self.mode, "result"], rows);
    }
}
