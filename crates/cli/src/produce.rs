//! `runnel produce`: one record per line from stdin or a file.

use std::collections::{BTreeMap, VecDeque};
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context};
use runnel_client::producer::{
    parse_compression, Acks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord,
};
use runnel_client::{Cluster, Header};
use serde_json::json;

use crate::global::Global;
use crate::output::{print_json, Output};

/// Deliveries awaited at most this far behind the line being read.
const MAX_PENDING: usize = 10_000;

/// `runnel produce` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topic.
    pub topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Each line is KEY<SEP>VALUE, split at the first SEP.
    #[arg(long = "key-separator", value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header for every record, `key=value`; repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Send every record to this partition (default: by key, or sticky).
    #[arg(long)]
    pub partition: Option<i32>,
    /// `acks`: 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// `compression.type`: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
}

/// Runs `runnel produce`.
pub async fn run(global: &Global, args: Args) -> anyhow::Result<()> {
    let headers = parse_headers(&args.headers)?;
    let config = producer_config(global, &args.acks, &args.compression)?;
    let cluster = global.connect().await?;
    check_topic(&cluster, &args.topic).await?;
    let producer = Producer::with_cluster(cluster, config)
        .await
        .with_context(|| format!("cannot start a producer on {}", global.bootstrap))?;
    let lines = read_lines(args.file.clone())?;
    let result = produce_lines(&producer, &args, &headers, lines).await;
    producer.close().await?;
    let last_offsets = result?;
    let records: usize = last_offsets.values().map(|(n, _)| n).sum();
    if global.output == Output::Json {
        let partitions: serde_json::Map<String, serde_json::Value> = last_offsets
            .iter()
            .map(|(p, (_, offset))| (p.to_string(), json!(offset)))
            .collect();
        print_json(&json!({
            "topic": args.topic,
            "records": records,
            "partitions": partitions,
        }));
    } else {
        eprintln!("produced {records} records to {}", args.topic);
    }
    Ok(())
}

/// Producer settings from the common options.
pub fn producer_config(
    global: &Global,
    acks: &str,
    compression: &str,
) -> anyhow::Result<ProducerConfig> {
    Ok(ProducerConfig::new(global.client_config())
        .acks(Acks::parse(acks)?)
        .compression(parse_compression(compression)?)
        .max_block(global.timeout()))
}

/// Fails clearly when the topic does not exist and the broker will not create it.
pub async fn check_topic(cluster: &Cluster, topic: &str) -> anyhow::Result<()> {
    let errors = cluster
        .fetch_metadata(&[topic.to_owned()], true)
        .await
        .with_context(|| format!("cannot read the metadata of {topic}"))?;
    if errors.iter().any(|(t, code)| t == topic && *code == 3) {
        bail!("topic {topic} does not exist (and the broker does not create topics automatically)");
    }
    Ok(())
}

fn parse_headers(headers: &[String]) -> anyhow::Result<Vec<Header>> {
    headers
        .iter()
        .map(|h| {
            let (key, value) = h
                .split_once('=')
                .with_context(|| format!("header {h:?} is not key=value"))?;
            Ok(Header {
                key: key.to_owned(),
                value: Some(bytes::Bytes::copy_from_slice(value.as_bytes())),
            })
        })
        .collect()
}

/// Lines from the file or stdin, read on a thread of their own.
fn read_lines(
    file: Option<PathBuf>,
) -> anyhow::Result<tokio::sync::mpsc::Receiver<std::io::Result<String>>> {
    let reader: Box<dyn BufRead + Send> = match &file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    std::thread::spawn(move || {
        for line in reader.lines() {
            let failed = line.is_err();
            if tx.blocking_send(line).is_err() || failed {
                return;
            }
        }
    });
    Ok(rx)
}

/// Sends every line; returns, per partition, the records written and the last offset.
async fn produce_lines(
    producer: &Producer,
    args: &Args,
    headers: &[Header],
    mut lines: tokio::sync::mpsc::Receiver<std::io::Result<String>>,
) -> anyhow::Result<BTreeMap<i32, (usize, i64)>> {
    let mut pending: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();
    let mut written: BTreeMap<i32, (usize, i64)> = BTreeMap::new();
    let mut number = 0;
    while let Some(line) = lines.recv().await {
        number += 1;
        let line = line.with_context(|| format!("cannot read line {number}"))?;
        let mut record = ProducerRecord::new(&args.topic);
        match &args.key_separator {
            Some(separator) => {
                let Some((key, value)) = line.split_once(separator.as_str()) else {
                    bail!("line {number} has no key separator {separator:?}: {line:?}");
                };
                record = record.key(key.to_owned()).value(value.to_owned());
            }
            None => record = record.value(line),
        }
        record.headers = headers.to_vec();
        record.partition = args.partition;
        let delivery = producer
            .send(record)
            .await
            .with_context(|| format!("cannot send line {number}"))?;
        pending.push_back((number, delivery));
        if pending.len() >= MAX_PENDING {
            if let Some((n, delivery)) = pending.pop_front() {
                settle(n, delivery, &mut written).await?;
            }
        }
    }
    producer.flush().await;
    for (n, delivery) in pending {
        settle(n, delivery, &mut written).await?;
    }
    Ok(written)
}

async fn settle(
    number: usize,
    delivery: DeliveryFuture,
    written: &mut BTreeMap<i32, (usize, i64)>,
) -> anyhow::Result<()> {
    let meta = delivery
        .await
        .with_context(|| format!("line {number} was not written"))?;
    let entry = written.entry(meta.partition).or_insert((0, -1));
    entry.0 += 1;
    entry.1 = entry.1.max(meta.offset);
    Ok(())
}
