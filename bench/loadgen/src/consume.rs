//! `consume`: catch-up read of a whole topic from the beginning.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::poll::{PollMode, Poller};
use crate::report::Report;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// `consume` options.
#[derive(Debug, Args)]
pub struct ConsumeOptions {
    #[arg(long)]
    topic: String,
    /// Give up after this many seconds, reporting what was read.
    #[arg(long, default_value_t = 20.0)]
    timeout_secs: f64,
    /// Extra librdkafka consumer property, `KEY=VALUE` (repeatable). Every
    /// one is copied into the report, so a row says what it ran with.
    #[arg(long = "consumer-config", value_parser = parse_property)]
    consumer_config: Vec<(String, String)>,
    /// How messages are taken from librdkafka: `batch` (many per call) or
    /// `single` (`BaseConsumer::poll`, one per call, about a microsecond of
    /// client CPU each).
    #[arg(long, value_enum, default_value_t = PollMode::Batch)]
    poll: PollMode,
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    Ok((key.to_string(), value.to_string()))
}

/// A gap of at least this long between two clock checks counts as a stall:
/// the client's queue ran dry (librdkafka backs a partition's fetching off
/// for `fetch.queue.backoff.ms`, 1 s by default, whenever its queue is
/// above `queued.min.messages` / `queued.max.messages.kbytes`).
const STALL: Duration = Duration::from_millis(100);

/// The clock is read once per this many messages (and on every empty poll),
/// not per message: at over a million messages a second, reading it per
/// message is a measurable share of the client's CPU, which the broker
/// under test shares.
const CLOCK_EVERY: u64 = 256;

/// How long one poll waits while the queue is empty; also the longest gap
/// between two clock checks while nothing arrives.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// A consumer with a manual assignment and no offset commits: the benchmark
/// must not depend on consumer groups, which not every broker has.
pub fn assigned_consumer(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    fetch_wait_max_ms: u64,
    extra: &[(String, String)],
) -> anyhow::Result<BaseConsumer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "runnel-bench-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", fetch_wait_max_ms.to_string());
    for (key, value) in extra {
        config.set(key, value);
    }
    let consumer: BaseConsumer = config.create().context("creating the consumer")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Number of partitions of `topic` and how many records they hold in all.
fn topic_extent(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<(i32, u64)> {
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let partitions = metadata
        .topics()
        .first()
        .map(|topic| topic.partitions().len() as i32)
        .context("topic not in metadata")?;
    let mut total = 0u64;
    for partition in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, METADATA_TIMEOUT)?;
        total += (high - low).max(0) as u64;
    }
    Ok((partitions, total))
}

/// Counts stalls: runs of consecutive clock checks each at least [`STALL`]
/// after the one before.
#[derive(Debug)]
struct StallClock {
    start: Instant,
    last_check: Instant,
    in_stall: bool,
    stalls: u64,
    stalled: Duration,
}

impl StallClock {
    fn new(start: Instant) -> StallClock {
        StallClock {
            start,
            last_check: start,
            in_stall: false,
            stalls: 0,
            stalled: Duration::ZERO,
        }
    }

    /// Reads the clock; `records` so far (waiting for the first one is not
    /// a stall). Returns the time since the start.
    fn check(&mut self, records: u64) -> Duration {
        let now = Instant::now();
        let gap = now - self.last_check;
        let stalled = gap >= STALL && records > 0;
        if stalled {
            self.stalls += u64::from(!self.in_stall);
            self.stalled += gap;
        }
        self.in_stall = stalled;
        self.last_check = now;
        now - self.start
    }
}

pub fn run(bootstrap: &str, options: &ConsumeOptions) -> anyhow::Result<Report> {
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let (partitions, expected) = topic_extent(&probe, &options.topic)?;
    drop(probe);
    let consumer = assigned_consumer(
        bootstrap,
        &options.topic,
        partitions,
        500,
        &options.consumer_config,
    )?;
    let timeout = Duration::from_secs_f64(options.timeout_secs);
    let start = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut clock = StallClock::new(start);
    let mut poller = Poller::new(&consumer, options.poll)?;
    while records < expected {
        let before = records;
        let taken = poller
            .poll(POLL_TIMEOUT, |payload| {
                records += 1;
                bytes += payload.len() as u64;
            })
            .context("consuming")?;
        // In batches the clock is read when a batch crosses a multiple of
        // CLOCK_EVERY, so both modes read it equally often.
        let crossed = records / CLOCK_EVERY != before / CLOCK_EVERY;
        if (taken == 0 || crossed) && clock.check(records) >= timeout {
            break;
        }
    }
    drop(poller);
    let seconds = start.elapsed().as_secs_f64();
    let mut report = Report::new("consume");
    report.set("topic", options.topic.clone());
    report.set("partitions", partitions);
    report.set("expected", expected);
    report.set("poll", options.poll.name());
    for (key, value) in &options.consumer_config {
        report.set(key, value.clone());
    }
    report.set("stalls", clock.stalls);
    report.set(
        "stalled_secs",
        (clock.stalled.as_secs_f64() * 1e3).round() / 1e3,
    );
    report.set_rates(records, bytes, seconds);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        options: ConsumeOptions,
    }

    fn parse(args: &[&str]) -> Result<ConsumeOptions, clap::Error> {
        let args = ["consume", "--topic", "t"].iter().chain(args);
        Command::try_parse_from(args).map(|command| command.options)
    }

    #[test]
    fn poll_mode_defaults_to_batch_and_accepts_single() {
        assert_eq!(parse(&[]).map(|o| o.poll).ok(), Some(PollMode::Batch));
        let single = parse(&["--poll", "single"]).map(|o| o.poll).ok();
        assert_eq!(single, Some(PollMode::Single));
        assert!(parse(&["--poll", "many"]).is_err());
    }

    #[test]
    fn consumer_config_is_split_at_the_first_equals_sign() {
        let options = parse(&["--consumer-config", "a.b=1=2"]).map(|o| o.consumer_config);
        assert_eq!(options.ok(), Some(vec![("a.b".into(), "1=2".into())]));
        assert!(parse(&["--consumer-config", "novalue"]).is_err());
    }
}
