//! `runnel perf produce`: sends fixed-size records through the client's
//! producer, optionally rate-limited, and reports throughput and the latency
//! from `send` to acknowledgement.
//!
//! The latency is measured on one record in [`LATENCY_SAMPLE_EVERY`] (every
//! eighth sent, whatever its place in its batch), not on every record: two
//! clock reads and a locked histogram per record cost as much as sending it.
//! Batches hold hundreds to thousands of records, so the sample spreads
//! evenly over every batch and the percentiles are those of all records
//! (within the sampling error of a few hundred thousand samples).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::producer::{Producer, ProducerRecord};
use runnel_client::Cluster;

use super::{latency_histogram, progress, Report};
use crate::global::Global;

/// `runnel perf produce` options.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("bound").required(true).args(["records", "duration"])))]
pub struct Args {
    /// The topic.
    pub topic: String,
    /// Records to send.
    #[arg(long)]
    pub records: Option<u64>,
    /// Seconds to send for (instead of --records).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Value size in bytes.
    #[arg(long = "record-size", default_value_t = 100)]
    pub record_size: usize,
    /// Records per second at most; -1 for no limit.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub throughput: i64,
    /// `acks`: 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// `compression.type`: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Create the topic with this many partitions if it does not exist.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// `linger.ms`.
    #[arg(long = "linger-ms", default_value_t = 5)]
    pub linger_ms: u64,
    /// `batch.size` in bytes.
    #[arg(long = "batch-size", default_value_t = 16384)]
    pub batch_size: usize,
}

/// Records sent between two updates of the progress bar.
const PROGRESS_STEP: u64 = 4096;

/// One record in this many has its latency measured (see the module docs).
const LATENCY_SAMPLE_EVERY: u64 = 8;

/// What the acknowledgement callbacks gather.
#[derive(Debug)]
struct Tally {
    acked: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    latency: Mutex<hdrhistogram::Histogram<u64>>,
}

impl Tally {
    /// Records acknowledged or failed so far.
    fn completed(&self) -> u64 {
        self.acked.load(Ordering::Relaxed) + self.errors.load(Ordering::Relaxed)
    }
}

/// Runs `runnel perf produce`.
pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    if args.throughput == 0 {
        bail!("--throughput must be positive, or -1 for no limit");
    }
    let config = crate::produce::producer_config(global, &args.acks, &args.compression)?
        .linger(Duration::from_millis(args.linger_ms))
        .batch_size(args.batch_size);
    let cluster = global.connect().await?;
    if let Some(partitions) = args.partitions {
        create_topic_if_missing(&cluster, &args.topic, partitions, global.timeout()).await?;
    } else {
        crate::produce::check_topic(&cluster, &args.topic).await?;
    }
    let producer = Producer::with_cluster(cluster, config)
        .await
        .with_context(|| format!("cannot start a producer on {}", global.bootstrap))?;
    let tally = Arc::new(Tally {
        acked: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        latency: Mutex::new(latency_histogram()),
    });
    let bar = progress(args.records);
    let value = Bytes::from(payload(args.record_size));
    let deadline = args.duration.map(Duration::from_secs_f64);
    let start = Instant::now();
    let mut sent: u64 = 0;
    loop {
        // The bar follows the acknowledgements in steps: drawing (and reading
        // the clock for its rate limit) per record costs more than sending one.
        if sent.is_multiple_of(PROGRESS_STEP) {
            bar.set_position(tally.completed());
        }
        if args.records.is_some_and(|n| sent >= n) || deadline.is_some_and(|d| start.elapsed() >= d)
        {
            break;
        }
        if args.throughput > 0 {
            let due = start + Duration::from_secs_f64(sent as f64 / args.throughput as f64);
            if due > Instant::now() + Duration::from_millis(1) {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let record = ProducerRecord::new(&args.topic).value(value.clone());
        let sent_at = sent.is_multiple_of(LATENCY_SAMPLE_EVERY).then(Instant::now);
        let tally_cb = tally.clone();
        producer
            .send_with_callback(record, move |result| match result {
                Ok(_) => {
                    if let Some(sent_at) = sent_at {
                        let micros = sent_at.elapsed().as_micros().max(1) as u64;
                        if let Ok(mut h) = tally_cb.latency.lock() {
                            let _ = h.record(micros);
                        }
                    }
                    tally_cb.acked.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tally_cb.errors.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut first) = tally_cb.first_error.lock() {
                        first.get_or_insert_with(|| e.to_string());
                    }
                }
            })
            .await
            .context("cannot send")?;
        sent += 1;
    }
    producer.flush().await;
    let elapsed = start.elapsed();
    producer.close().await?;
    bar.set_position(tally.completed());
    bar.finish_and_clear();
    let acked = tally.acked.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    if let Some(first) = tally.first_error.lock().ok().and_then(|f| f.clone()) {
        eprintln!("runnel: {errors} record(s) failed; the first: {first}");
    }
    let latency = tally.latency.lock().ok().map(|h| h.clone());
    let report = Report {
        mode: "produce",
        records: acked,
        bytes: acked * args.record_size as u64,
        elapsed,
        errors,
        latency: latency.filter(|h| !h.is_empty()),
    };
    report.print(global.output);
    if acked == 0 && sent > 0 {
        bail!("no record was acknowledged");
    }
    Ok(())
}

/// A value of `size` bytes that compresses about as well as text.
fn payload(size: usize) -> Vec<u8> {
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut state: u32 = 0x9e37_79b9;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            alphabet[state as usize % alphabet.len()]
        })
        .collect()
}

/// Creates `topic` with `partitions` partitions unless it exists, with a raw
/// CreateTopics to the controller.
async fn create_topic_if_missing(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> anyhow::Result<()> {
    if partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    let errors = cluster.refresh_metadata(&[topic.to_owned()]).await?;
    if !errors.iter().any(|(t, code)| t == topic && *code == 3) {
        return Ok(());
    }
    let controller = cluster.metadata().controller_id;
    let connection = if controller >= 0 {
        cluster.broker(controller).await?
    } else {
        cluster.any_broker().await?
    };
    // -1 is "the broker's default.replication.factor" from CreateTopics v4 (KIP-464).
    let replication = if connection.version_for::<CreateTopicsRequest>(None)? >= 4 {
        -1
    } else {
        1
    };
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX))
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_num_partitions(partitions)
            .with_replication_factor(replication)]);
    let response = connection.send(&request).await?;
    for t in &response.topics {
        // TOPIC_ALREADY_EXISTS (36): someone else created it meanwhile.
        if t.error_code != 0 && t.error_code != 36 {
            return Err(runnel_client::Error::broker(
                t.error_code,
                t.error_message.as_ref().map(|m| m.to_string()),
                format!("creating topic {topic}"),
            )
            .into());
        }
    }
    // Wait until every partition has a leader.
    let deadline = Instant::now() + timeout;
    loop {
        cluster.refresh_metadata(&[topic.to_owned()]).await?;
        let ready = cluster.metadata().topics.get(topic).is_some_and(|t| {
            t.partitions.len() == partitions as usize && t.partitions.iter().all(|p| p.leader >= 0)
        });
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("topic {topic} was created but has no leaders after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
