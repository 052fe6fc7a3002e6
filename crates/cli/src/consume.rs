//! `runnel consume`: prints a topic's records, one per line, with a kcat-like format
//! string, or as JSON Lines with `-o json` (one JSON object per record and line, so a
//! script can process records as they arrive).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use runnel_client::consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
use runnel_client::{Error, TopicPartition};
use serde_json::{json, Value};

use crate::global::Global;
use crate::output::Output;

/// `runnel consume` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "FORMAT placeholders (as kcat's): %t topic, %p partition, %o offset, \
%k key, %v value, %T timestamp (ms), %h headers (k=v,k=v), %% a percent sign; \\n, \\t and \\\\ \
escapes. With -o json the output is JSON Lines: one object per record with topic, partition, \
offset, timestamp, key, value and headers."
)]
pub struct Args {
    /// The topic.
    #[arg(required_unless_present = "include")]
    pub topic: Option<String>,
    /// Instead of one topic, every topic whose whole name matches this regular
    /// expression, also those created while running (as kafka-console-consumer's
    /// --include). Reads as a group member: --group, or a new group of its own.
    #[arg(long, conflicts_with_all = ["topic", "partition", "offset", "from_timestamp"])]
    pub include: Option<String>,
    /// Start at the beginning of each partition (with --group: where the group has
    /// no committed offset).
    #[arg(long, conflicts_with_all = ["offset", "from_timestamp"])]
    pub from_beginning: bool,
    /// Start at this offset in each partition read.
    #[arg(long, conflicts_with = "from_timestamp")]
    pub offset: Option<i64>,
    /// Start at the first record with a timestamp at or after this (ms since the epoch).
    #[arg(long)]
    pub from_timestamp: Option<i64>,
    /// Read only this partition (default: all).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Consume as a member of this group, committing its progress. With --partition,
    /// --offset or --from-timestamp the partitions are assigned by hand and only the
    /// commits use the group.
    #[arg(long)]
    pub group: Option<String>,
    /// Exit after this many records.
    #[arg(long)]
    pub count: Option<u64>,
    /// Exit once no record has arrived for this long (default: run until Ctrl-C).
    #[arg(long = "idle-timeout-ms")]
    pub idle_timeout_ms: Option<u64>,
    /// How to print each record (default: the value and a newline).
    #[arg(long, short = 'f', default_value = "%v\\n")]
    pub format: String,
}

/// Runs `runnel consume`.
pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    let format = Format::parse(&args.format)?;
    let cluster = global.connect().await?;
    let config = consumer_config(global, &args);
    if let Some(pattern) = &args.include {
        let consumer = Consumer::with_cluster(cluster, config);
        consumer
            .subscribe_pattern(pattern)
            .await
            .context("--include")?;
        return finish(consumer, &args, &format, global).await;
    }
    let Some(topic_name) = args.topic.as_deref() else {
        bail!("name a topic, or --include a pattern");
    };
    let topic = cluster.topic(topic_name).await.map_err(|e| match e {
        Error::UnknownTopic(t) => anyhow::anyhow!("unknown topic {t}"),
        other => anyhow::Error::new(other).context(format!("looking up topic {topic_name}")),
    })?;
    let partitions: Vec<TopicPartition> = match args.partition {
        Some(p) if p < 0 || p as usize >= topic.partitions.len() => bail!(
            "topic {topic_name} has no partition {p} (it has {})",
            topic.partitions.len()
        ),
        Some(p) => vec![TopicPartition::new(topic_name, p)],
        None => topic
            .partitions
            .iter()
            .map(|p| TopicPartition::new(topic_name, p.partition))
            .collect(),
    };
    let consumer = Consumer::with_cluster(cluster, config);
    let explicit_start = args.offset.is_some() || args.from_timestamp.is_some();
    if args.group.is_some() && args.partition.is_none() && !explicit_start {
        consumer.subscribe(&[topic_name]).await?;
    } else {
        consumer.assign(&partitions).await?;
        position(&consumer, &args, &partitions).await?;
    }
    finish(consumer, &args, &format, global).await
}

/// Prints records until done, then closes the consumer.
async fn finish(
    consumer: Consumer,
    args: &Args,
    format: &Format,
    global: &Global,
) -> anyhow::Result<()> {
    let result = print_records(&consumer, args, format, global.output).await;
    let closed = consumer.close().await;
    result?;
    closed.context("closing the consumer")
}

/// The consumer's settings: where to start without a position, and the group
/// (with --include and no --group, a new one, as kafka-console-consumer).
fn consumer_config(global: &Global, args: &Args) -> ConsumerConfig {
    let mut config = ConsumerConfig::from_client(global.client_config())
        .fetch_max_wait(Duration::from_millis(200))
        .auto_offset_reset(if args.from_beginning {
            OffsetReset::Earliest
        } else {
            OffsetReset::Latest
        });
    match (&args.group, &args.include) {
        (Some(group), _) => config = config.group_id(group.clone()),
        (None, Some(_)) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            config = config.group_id(format!("runnel-consume-{}-{nanos}", std::process::id()))
        }
        (None, None) => {}
    }
    config
}

/// Moves the assigned partitions to where the options say to start.
async fn position(
    consumer: &Consumer,
    args: &Args,
    partitions: &[TopicPartition],
) -> anyhow::Result<()> {
    if let Some(offset) = args.offset {
        if offset < 0 {
            bail!("--offset must not be negative");
        }
        for tp in partitions {
            consumer.seek(tp, offset)?;
        }
    } else if let Some(timestamp) = args.from_timestamp {
        let wanted: BTreeMap<TopicPartition, i64> = partitions
            .iter()
            .map(|tp| (tp.clone(), timestamp))
            .collect();
        let found = consumer
            .offsets_for_times(&wanted)
            .await
            .context("looking up offsets by timestamp")?;
        for tp in partitions {
            match found.get(tp).copied().flatten() {
                Some(listed) => consumer.seek(tp, listed.offset)?,
                None => consumer.seek_to_end(std::slice::from_ref(tp))?,
            }
        }
    } else if args.from_beginning && args.group.is_none() {
        consumer.seek_to_beginning(partitions)?;
    }
    Ok(())
}

async fn print_records(
    consumer: &Consumer,
    args: &Args,
    format: &Format,
    output: Output,
) -> anyhow::Result<()> {
    let idle = args.idle_timeout_ms.map(Duration::from_millis);
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    let mut line = Vec::with_capacity(256);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while args.count.is_none_or(|count| printed < count) {
        let want = args.count.map_or(500, |c| (c - printed).min(500) as usize);
        let next = consumer.recv_many(want);
        let records = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            records = async {
                match idle {
                    Some(idle) => tokio::time::timeout(idle, next).await.ok(),
                    None => Some(next.await),
                }
            } => records,
        };
        let Some(records) = records else {
            return Ok(());
        };
        let records = records?;
        let mut out = stdout.lock();
        for record in &records {
            line.clear();
            match output {
                Output::Json => {
                    serde_json::to_writer(&mut line, &record_json(record))?;
                    line.push(b'\n');
                }
                Output::Table => format.write(record, &mut line),
            }
            if out.write_all(&line).is_err() {
                // The reader went away (a closed pipe): stop quietly.
                return Ok(());
            }
        }
        if out.flush().is_err() {
            return Ok(());
        }
        printed += records.len() as u64;
    }
    Ok(())
}

fn text(bytes: Option<&[u8]>) -> Value {
    bytes.map_or(Value::Null, |b| {
        Value::String(String::from_utf8_lossy(b).into_owned())
    })
}

/// One record as a JSON object; keys, values and headers as (lossy UTF-8) strings.
fn record_json(record: &ConsumerRecord) -> Value {
    let headers: Vec<Value> = record
        .headers
        .iter()
        .map(|h| json!({"key": h.key, "value": text(h.value.as_deref())}))
        .collect();
    json!({
        "topic": &*record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": text(record.key.as_deref()),
        "value": text(record.value.as_deref()),
        "headers": headers,
    })
}

/// A parsed format string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Format(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Timestamp,
    Headers,
}

impl Format {
    fn parse(spec: &str) -> anyhow::Result<Format> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = spec.chars();
        while let Some(c) = chars.next() {
            let piece = match c {
                '%' => match chars.next() {
                    Some('t') => Piece::Topic,
                    Some('p') => Piece::Partition,
                    Some('o') => Piece::Offset,
                    Some('k') => Piece::Key,
                    Some('v') => Piece::Value,
                    Some('T') => Piece::Timestamp,
                    Some('h') => Piece::Headers,
                    Some('%') => {
                        literal.push('%');
                        continue;
                    }
                    Some(other) => bail!("unknown placeholder %{other} in --format"),
                    None => bail!("--format ends with a lone %"),
                },
                '\\' => {
                    match chars.next() {
                        Some('n') => literal.push('\n'),
                        Some('t') => literal.push('\t'),
                        Some('r') => literal.push('\r'),
                        Some('\\') | None => literal.push('\\'),
                        Some(other) => {
                            literal.push('\\');
                            literal.push(other);
                        }
                    }
                    continue;
                }
                other => {
                    literal.push(other);
                    continue;
                }
            };
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Format(pieces))
    }

    fn write(&self, record: &ConsumerRecord, out: &mut Vec<u8>) {
        for piece in &self.0 {
            match piece {
                Piece::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Piece::Topic => out.extend_from_slice(record.topic.as_bytes()),
                Piece::Partition => out.extend_from_slice(record.partition.to_string().as_bytes()),
                Piece::Offset => out.extend_from_slice(record.offset.to_string().as_bytes()),
                Piece::Key => out.extend_from_slice(record.key.as_deref().unwrap_or_default()),
                Piece::Value => out.extend_from_slice(record.value.as_deref().unwrap_or_default()),
                Piece::Timestamp => out.extend_from_slice(record.timestamp.to_string().as_bytes()),
                Piece::Headers => {
                    for (i, h) in record.headers.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(h.key.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(h.value.as_deref().unwrap_or_default());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use runnel_client::consumer::TimestampType;
    use runnel_client::Header;

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 99,
            timestamp_type: TimestampType::CreateTime,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![
                Header {
                    key: "a".into(),
                    value: Some(Bytes::from_static(b"1")),
                },
                Header {
                    key: "b".into(),
                    value: None,
                },
            ],
            leader_epoch: None,
        }
    }

    fn render(spec: &str) -> String {
        let mut out = Vec::new();
        Format::parse(spec).unwrap().write(&record(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn placeholders_and_escapes_render_like_kcat() {
        assert_eq!(render("%t/%p/%o %k=%v @%T\\n"), "t/2/7 k=v @99\n");
        assert_eq!(render("%h\\t100%%"), "a=1,b=\t100%");
        assert_eq!(render("%v\\n"), "v\n");
    }

    #[test]
    fn unknown_placeholders_are_refused() {
        assert!(Format::parse("%x").is_err());
        assert!(Format::parse("50%").is_err());
    }

    #[test]
    fn json_has_every_field() {
        let value = record_json(&record());
        assert_eq!(value["partition"], 2);
        assert_eq!(value["key"], "k");
        assert_eq!(value["headers"][1]["value"], Value::Null);
    }
}
