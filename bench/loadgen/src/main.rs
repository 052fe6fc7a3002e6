//! Benchmark load generator: librdkafka (through the `rdkafka` crate) as a
//! third-party client against any Kafka-compatible broker, so Runnel and a peer
//! broker are measured with the same client and settings.
//!
//! Every run prints one human line and one JSON line (prefixed `JSON `), which
//! `bench/run.sh` collects into its table.

mod batch_queue;
mod consume;
mod latency;
mod poll;
mod produce;
mod report;
mod topic;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Kafka benchmark load generator on librdkafka"
)]
struct Cli {
    /// `host:port` of the broker.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    /// A name for the broker, copied into the output (`runnel`, `tansu`).
    #[arg(long, default_value = "broker", global = true)]
    label: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Create a topic (an existing one is left as it is).
    Create(topic::CreateOptions),
    /// Produce as fast as the client allows: records/s, MB/s, ack latency.
    Produce(ProduceOptions),
    /// Read a topic from the beginning to its end: records/s, MB/s.
    Consume(consume::ConsumeOptions),
    /// Produce at a fixed rate while a consumer reads: produce-to-consume latency.
    Latency(latency::LatencyOptions),
}

/// Producer settings shared by `produce` and `latency`.
#[derive(Debug, Args, Clone)]
pub struct ProducerSettings {
    #[arg(long)]
    topic: String,
    /// Bytes per record value (at least 16: a timestamp and a sequence number lead it).
    #[arg(long, default_value_t = 100)]
    record_bytes: usize,
    /// `acks`: 0, 1 or all.
    #[arg(long, default_value = "1")]
    acks: String,
    /// `compression.type`: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// `linger.ms`.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Records are spread round-robin over partitions 0..partitions.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
}

/// `produce` options.
#[derive(Debug, Args)]
pub struct ProduceOptions {
    #[command(flatten)]
    producer: ProducerSettings,
    /// Stop after this many records (whichever of records and duration comes first).
    #[arg(long, default_value_t = u64::MAX)]
    records: u64,
    /// Stop producing after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match cli.mode {
        Mode::Create(options) => {
            topic::create(&cli.bootstrap, &options)?;
            return Ok(());
        }
        Mode::Produce(options) => produce::run(
            &cli.bootstrap,
            &options.producer,
            options.records,
            Duration::from_secs_f64(options.duration_secs),
        )?,
        Mode::Consume(options) => consume::run(&cli.bootstrap, &options)?,
        Mode::Latency(options) => latency::run(&cli.bootstrap, &options)?,
    };
    report.print(&cli.label);
    Ok(())
}
