//! `produce`: as fast as librdkafka will send, with ack latency per record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::report::{micros_histogram, Report};
use crate::ProducerSettings;

const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Microseconds since the first call in this process; producers stamp records
/// with it and the latency consumer (same process) reads it back.
pub fn now_micros() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// The first 8 bytes of a record value: its send time from [`now_micros`].
pub fn sent_micros(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

/// Counts acknowledgements and records each one's latency from its send time.
#[derive(Debug)]
pub struct AckRecorder {
    acked: AtomicU64,
    failed: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

impl ClientContext for AckRecorder {}

impl ProducerContext for AckRecorder {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                if let Some(sent) = message.payload().and_then(sent_micros) {
                    let micros = now_micros().saturating_sub(sent).max(1);
                    if let Ok(mut histogram) = self.latency.lock() {
                        histogram.saturating_record(micros);
                    }
                }
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A producer with the benchmark's settings.
pub fn producer(
    bootstrap: &str,
    settings: &ProducerSettings,
) -> anyhow::Result<BaseProducer<AckRecorder>> {
    anyhow::ensure!(
        settings.record_bytes >= 16,
        "--record-bytes must be at least 16"
    );
    let recorder = AckRecorder {
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        latency: Mutex::new(micros_histogram()),
    };
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", &settings.acks)
        .set("compression.type", &settings.compression)
        .set("linger.ms", settings.linger_ms.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "60000")
        .create_with_context(recorder)
        .context("creating the producer")
}

/// Sends one record stamped with its send time and sequence number, waiting
/// (serving callbacks) while librdkafka's queue is full.
pub fn send(
    producer: &BaseProducer<AckRecorder>,
    settings: &ProducerSettings,
    value: &mut [u8],
    sequence: u64,
) -> anyhow::Result<()> {
    value[8..16].copy_from_slice(&sequence.to_le_bytes());
    let partition = (sequence % settings.partitions.max(1) as u64) as i32;
    loop {
        value[..8].copy_from_slice(&now_micros().to_le_bytes());
        let record: BaseRecord<'_, (), [u8]> = BaseRecord::to(&settings.topic)
            .payload(&*value)
            .partition(partition);
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(1));
            }
            Err((error, _)) => return Err(error).context("producing"),
        }
    }
}

/// Produces until `records` are sent or `duration` passes, then waits for every ack.
pub fn run(
    bootstrap: &str,
    settings: &ProducerSettings,
    records: u64,
    duration: Duration,
) -> anyhow::Result<Report> {
    let producer = producer(bootstrap, settings)?;
    let mut value = vec![b'x'; settings.record_bytes];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < records && (!sent.is_multiple_of(1024) || start.elapsed() < duration) {
        send(&producer, settings, &mut value, sent)?;
        sent += 1;
        if sent.is_multiple_of(256) {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(FLUSH_TIMEOUT).context("waiting for acks")?;
    let seconds = start.elapsed().as_secs_f64();
    let recorder = producer.context();
    let acked = recorder.acked.load(Ordering::Relaxed);
    let mut report = Report::new("produce");
    report.set("topic", settings.topic.clone());
    report.set("record_bytes", settings.record_bytes as u64);
    report.set("partitions", settings.partitions);
    report.set("acks", settings.acks.clone());
    report.set("compression", settings.compression.clone());
    report.set("linger_ms", settings.linger_ms);
    report.set_rates(acked, acked * settings.record_bytes as u64, seconds);
    report.set("failed", recorder.failed.load(Ordering::Relaxed));
    if let Ok(histogram) = recorder.latency.lock() {
        report.set_latency("ack", &histogram);
    }
    Ok(report)
}
