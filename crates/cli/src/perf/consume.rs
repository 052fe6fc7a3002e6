//! `runnel perf consume`: catch-up read of a pre-filled topic from the beginning,
//! measured the way bench/loadgen's `consume` mode measures librdkafka: the records
//! to read are the partitions' extent (end offset minus start offset) when the run
//! starts, the clock starts when the consumer is created and assigned, and stops at
//! the last record; throughput is records per second.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use runnel_client::consumer::{Consumer, ConsumerConfig, OffsetReset};
use runnel_client::{Error, TopicPartition};

use crate::global::Global;
use crate::perf::{progress, Report};

/// `runnel perf consume` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topic (already filled, e.g. by `runnel perf produce`).
    pub topic: String,
    /// Stop after this many records (default: everything in the topic at the start).
    #[arg(long)]
    pub records: Option<u64>,
    /// Stop after this many seconds instead.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Consume as a member of this group (subscribing; a new group starts at the
    /// beginning). The time to join, including the broker's
    /// group.initial.rebalance.delay.ms, counts in the elapsed time. Without it the
    /// partitions are assigned by hand, as bench/loadgen does.
    #[arg(long)]
    pub group: Option<String>,
    /// `fetch.max.bytes`.
    #[arg(long, default_value_t = 50 * 1024 * 1024)]
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_partition_fetch_bytes: i32,
    /// Give up when no record arrives for this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub idle_secs: f64,
}

/// Runs `runnel perf consume`.
pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    if args.records == Some(0) {
        bail!("--records must be positive");
    }
    let cluster = global.connect().await?;
    let topic = cluster.topic(&args.topic).await.map_err(|e| match e {
        Error::UnknownTopic(t) => anyhow::anyhow!("unknown topic {t}"),
        other => anyhow::Error::new(other),
    })?;
    let partitions: Vec<TopicPartition> = topic
        .partitions
        .iter()
        .map(|p| TopicPartition::new(&args.topic, p.partition))
        .collect();
    let mut config = ConsumerConfig::from_client(global.client_config())
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .fetch_max_bytes(args.fetch_max_bytes)
        .set(
            "max.partition.fetch.bytes",
            &args.max_partition_fetch_bytes.to_string(),
        )?;
    if let Some(group) = &args.group {
        config = config.group_id(group.clone());
    }
    let probe = Consumer::with_cluster(cluster.clone(), config.clone());
    let start_offsets = probe.beginning_offsets(&partitions).await?;
    let end_offsets = probe.end_offsets(&partitions).await?;
    probe.close().await?;
    let extent: u64 = partitions
        .iter()
        .map(|tp| {
            let (low, high) = (start_offsets[tp], end_offsets[tp]);
            (high - low).max(0) as u64
        })
        .sum();
    let target = match (args.records, args.duration) {
        (Some(records), _) => records,
        (None, Some(_)) => u64::MAX,
        (None, None) if extent == 0 => bail!("topic {} is empty", args.topic),
        (None, None) => extent,
    };
    let deadline = args.duration.map(Duration::from_secs_f64);
    let idle = Duration::from_secs_f64(args.idle_secs);

    let bar = progress((target != u64::MAX).then_some(target));
    let started = Instant::now();
    let consumer = Consumer::with_cluster(cluster, config);
    match &args.group {
        Some(_) => consumer.subscribe(&[args.topic.as_str()]).await?,
        None => {
            consumer.assign(&partitions).await?;
            consumer.seek_to_beginning(&partitions)?;
        }
    }
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut finished = started;
    while records < target {
        let wait = match deadline {
            Some(d) => idle.min(d.saturating_sub(started.elapsed())),
            None => idle,
        };
        let want = (target - records).min(2048) as usize;
        let batch = match tokio::time::timeout(wait, consumer.recv_many(want)).await {
            Ok(batch) => batch.context("consuming")?,
            Err(_) if deadline.is_some_and(|d| started.elapsed() >= d) => break,
            Err(_) => {
                bar.abandon();
                bail!(
                    "no record for {:.1} s after {records} of {target}",
                    idle.as_secs_f64()
                );
            }
        };
        for record in &batch {
            bytes += record.key.as_ref().map_or(0, |k| k.len() as u64)
                + record.value.as_ref().map_or(0, |v| v.len() as u64);
        }
        records += batch.len() as u64;
        finished = Instant::now();
        bar.inc(batch.len() as u64);
        if deadline.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
    }
    bar.finish_and_clear();
    let _ = consumer.close().await;
    Report {
        mode: "consume",
        records,
        bytes,
        elapsed: finished - started,
        errors: 0,
        latency: None,
    }
    .print(global.output);
    Ok(())
}
