//! `latency`: produce at a fixed rate while a consumer reads; the latency of a
//! record is the time from its send (stamped in its value) to its arrival at
//! the consumer, both clocks being this process's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rdkafka::producer::Producer;

use crate::consume::assigned_consumer;
use crate::poll::{PollMode, Poller};
use crate::produce::{now_micros, producer, send, sent_micros};
use crate::report::{micros_histogram, Report};
use crate::ProducerSettings;

/// `latency` options.
#[derive(Debug, Args)]
pub struct LatencyOptions {
    #[command(flatten)]
    producer: ProducerSettings,
    /// Records per second, evenly spaced.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of measured load (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Seconds of load at the start that are not measured.
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// The consumer's `fetch.wait.max.ms`.
    #[arg(long, default_value_t = 500)]
    fetch_wait_max_ms: u64,
    /// How the consumer takes messages from librdkafka (see `consume --poll`).
    #[arg(long, value_enum, default_value_t = PollMode::Batch)]
    poll: PollMode,
}

pub fn run(bootstrap: &str, options: &LatencyOptions) -> anyhow::Result<Report> {
    let settings = &options.producer;
    let consumer = assigned_consumer(
        bootstrap,
        &settings.topic,
        settings.partitions,
        options.fetch_wait_max_ms,
        &[],
    )?;
    let warmup_records = (options.rate as f64 * options.warmup_secs) as u64;
    let total = warmup_records + (options.rate as f64 * options.duration_secs) as u64;
    let producing = Arc::new(AtomicBool::new(true));
    let reader = {
        let producing = Arc::clone(&producing);
        let mode = options.poll;
        thread::spawn(move || -> anyhow::Result<_> {
            let mut histogram = micros_histogram();
            let mut received = 0u64;
            let mut idle_since = None;
            let mut poller = Poller::new(&consumer, mode)?;
            loop {
                // Errors are transient here (the broker is being written to
                // at the same time); the records they came with still count.
                let taken = poller
                    .poll(Duration::from_millis(50), |payload| {
                        received += 1;
                        let sequence = payload
                            .get(8..16)
                            .and_then(|bytes| bytes.try_into().ok())
                            .map(u64::from_le_bytes);
                        if let (Some(sent), Some(sequence)) = (sent_micros(payload), sequence) {
                            if sequence >= warmup_records {
                                let micros = now_micros().saturating_sub(sent).max(1);
                                histogram.saturating_record(micros);
                            }
                        }
                    })
                    .unwrap_or(0);
                if taken > 0 {
                    idle_since = None;
                } else if !producing.load(Ordering::Relaxed) {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if received >= total || since.elapsed() > Duration::from_secs(5) {
                        break;
                    }
                }
            }
            Ok((received, histogram))
        })
    };
    // Let the consumer connect and issue its first fetch before load starts.
    thread::sleep(Duration::from_secs(1));
    let producer = producer(bootstrap, settings)?;
    let mut value = vec![b'x'; settings.record_bytes];
    let start = Instant::now();
    for sequence in 0..total {
        let due = start + Duration::from_secs_f64(sequence as f64 / options.rate as f64);
        let now = Instant::now();
        if due > now {
            producer.poll(Duration::ZERO);
            thread::sleep(due - now);
        }
        send(&producer, settings, &mut value, sequence)?;
    }
    let send_seconds = start.elapsed().as_secs_f64();
    producer
        .flush(Duration::from_secs(30))
        .context("waiting for acks")?;
    producing.store(false, Ordering::Relaxed);
    let (received, histogram) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
    let mut report = Report::new("latency");
    report.set("topic", settings.topic.clone());
    report.set("record_bytes", settings.record_bytes as u64);
    report.set("partitions", settings.partitions);
    report.set("acks", settings.acks.clone());
    report.set("linger_ms", settings.linger_ms);
    report.set("poll", options.poll.name());
    report.set("target_rate", options.rate);
    report.set(
        "achieved_rate",
        (total as f64 / send_seconds.max(1e-9)).round(),
    );
    report.set("sent", total);
    report.set("received", received);
    report.set_latency("e2e", &histogram);
    Ok(report)
}
