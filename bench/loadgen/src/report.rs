//! One run's figures, printed as a human line and a JSON line.

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

/// What a run measured; `fields` are mode-specific settings and figures.
#[derive(Debug)]
pub struct Report {
    pub mode: &'static str,
    pub fields: Map<String, Value>,
}

impl Report {
    pub fn new(mode: &'static str) -> Report {
        Report {
            mode,
            fields: Map::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.insert(key.to_string(), value.into());
    }

    /// Records/s and MB/s (10^6 bytes of record values per second).
    pub fn set_rates(&mut self, records: u64, value_bytes: u64, seconds: f64) {
        self.set("records", records);
        self.set("seconds", round(seconds, 3));
        self.set("records_per_sec", round(records as f64 / seconds, 0));
        self.set("mb_per_sec", round(value_bytes as f64 / seconds / 1e6, 2));
    }

    /// p50, p99, p99.9 and max of a histogram of microseconds, as milliseconds.
    pub fn set_latency(&mut self, prefix: &str, histogram: &Histogram<u64>) {
        for (name, quantile) in [("p50", 0.5), ("p99", 0.99), ("p999", 0.999)] {
            let micros = histogram.value_at_quantile(quantile);
            self.set(
                &format!("{prefix}_{name}_ms"),
                round(micros as f64 / 1e3, 3),
            );
        }
        self.set(
            &format!("{prefix}_max_ms"),
            round(histogram.max() as f64 / 1e3, 3),
        );
        self.set(&format!("{prefix}_samples"), histogram.len());
    }

    pub fn print(mut self, label: &str) {
        let human: Vec<String> = self
            .fields
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        println!("{label} {}: {}", self.mode, human.join(" "));
        self.fields.insert("broker".into(), json!(label));
        self.fields.insert("mode".into(), json!(self.mode));
        println!("JSON {}", Value::Object(self.fields));
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// A histogram of microseconds from 1 µs to 1 h, 3 significant digits.
pub fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}
