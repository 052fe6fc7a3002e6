//! Regenerates the seed corpus under `fuzz/corpus/` (run from `fuzz/gen/`:
//! `cargo run --bin gen-corpus`). Every seed is built with Runnel's own
//! encoders or kafka-protocol's, with fixed timestamps, so a rerun gives the
//! same bytes.

use std::error::Error;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    create_topics_request::CreatableTopic,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeLogDirsRequest, FetchRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest,
    ListOffsetsRequest, MetadataRequest, ProduceRequest, RequestHeader, RequestKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use runnel_fuzz::{SegmentInput, FLAG_CLEAN_SHUTDOWN, FLAG_FIX_CRCS, FLAG_TWO_SEGMENTS};
use runnel_model::{Offset, Timestamp};
use runnel_protocol::batch::{set_base_offset, set_log_append_time, BatchBuilder, Compression};
use runnel_storage::{Log, LogConfig};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The time every seed is stamped with.
const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let requests = request_seeds()?;
    let batches = batch_seeds()?;
    let segments = segment_seeds()?;
    for (target, seeds) in [
        ("request_decode", requests),
        ("record_batch", batches),
        ("segment_recovery", segments),
    ] {
        let dir = root.join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let total: usize = seeds.iter().map(|(_, bytes)| bytes.len()).sum();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes)?;
        }
        println!("{target}: {} seeds, {total} bytes", seeds.len());
    }
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../regressions/segment_recovery");
    std::fs::create_dir_all(&regressions)?;
    std::fs::write(
        regressions.join("crc-valid-record-count-mismatch"),
        record_count_mismatch()?,
    )?;
    Ok(())
}

/// A one-batch segment whose header claims 5 records where it holds (and
/// its last offset delta says) 1, with the CRC recomputed over the lie:
/// recovery keeps it, `validate_batch` refuses it.
fn record_count_mismatch() -> Result<Vec<u8>> {
    let mut log = batch(Compression::None, &[b"one record"])?;
    log[57..61].copy_from_slice(&5i32.to_be_bytes());
    let crc = crc32c::crc32c(&log[21..]);
    log[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(SegmentInput {
        log,
        ..SegmentInput::default()
    }
    .encode())
}

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

fn batch(codec: Compression, values: &[&[u8]]) -> Result<Vec<u8>> {
    let mut builder = BatchBuilder {
        compression: codec,
        ..BatchBuilder::default()
    };
    for (i, value) in values.iter().enumerate() {
        builder = builder.value(NOW.0 + i as i64, value);
    }
    Ok(builder.build()?)
}

/// A body of every api the broker serves, with a little content where the
/// api has any, or `None` for an api this generator does not know.
fn request_body(api_key: ApiKey, version: i16) -> Result<Option<RequestKind>> {
    let with_topic_id = version >= 13;
    Ok(Some(match api_key {
        ApiKey::Produce => {
            let records = Bytes::from(batch(Compression::None, &[b"hello", b"world"])?);
            let mut data = TopicProduceData::default().with_partition_data(vec![
                PartitionProduceData::default().with_records(Some(records)),
            ]);
            data = if with_topic_id {
                data.with_topic_id(uuid::Uuid::from_u128(7))
            } else {
                data.with_name(topic("orders"))
            };
            RequestKind::Produce(
                ProduceRequest::default()
                    .with_acks(-1)
                    .with_timeout_ms(30_000)
                    .with_topic_data(vec![data]),
            )
        }
        ApiKey::Fetch => {
            let partition = FetchPartition::default()
                .with_fetch_offset(42)
                .with_partition_max_bytes(1 << 20);
            let mut fetch_topic = FetchTopic::default().with_partitions(vec![partition]);
            fetch_topic = if with_topic_id {
                fetch_topic.with_topic_id(uuid::Uuid::from_u128(7))
            } else {
                fetch_topic.with_topic(topic("orders"))
            };
            RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_topics(vec![fetch_topic]),
            )
        }
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(
            vec![ListOffsetsTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)])],
        )),
        ApiKey::Metadata => {
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic("orders"))),
            ])))
        }
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(topic("orders"))
                .with_num_partitions(3)
                .with_replication_factor(1)]),
        ),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default()),
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(CreatePartitionsRequest::default())
        }
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default())
        }
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        _ => return Ok(None),
    }))
}

/// Request frames (without the length prefix) of every served api at its
/// lowest, middle and highest advertised version.
fn request_seeds() -> Result<Vec<(String, Vec<u8>)>> {
    let mut seeds = Vec::new();
    for (key, min, max) in runnel_broker::supported_versions() {
        let api_key = ApiKey::try_from(key).map_err(|_| format!("unknown api key {key}"))?;
        let mut versions = vec![min, min + (max - min) / 2, max];
        versions.dedup();
        for version in versions {
            let Some(body) = request_body(api_key, version)? else {
                eprintln!("no seed body for {api_key:?}");
                break;
            };
            let mut frame = BytesMut::new();
            RequestHeader::default()
                .with_request_api_key(key)
                .with_request_api_version(version)
                .with_correlation_id(i32::from(version) + 1)
                .with_client_id(Some(StrBytes::from_static_str("runnel-fuzz")))
                .encode(&mut frame, api_key.request_header_version(version))?;
            if let Err(e) = body.encode(&mut frame, version) {
                // Produce v0-2: advertised (as Kafka does) but not encodable.
                eprintln!("skipping {api_key:?} v{version}: {e}");
                continue;
            }
            seeds.push((format!("{api_key:?}-v{version}"), frame.to_vec()));
        }
    }
    Ok(seeds)
}

/// Valid batches in every codec, idempotent and LogAppendTime ones, and
/// concatenations of several.
fn batch_seeds() -> Result<Vec<(String, Vec<u8>)>> {
    let mut seeds = Vec::new();
    let values: [&[u8]; 3] = [b"alpha", b"", b"gamma gamma gamma gamma"];
    for codec in Compression::ALL {
        let name = format!("{codec:?}").to_lowercase();
        seeds.push((format!("{name}-one"), batch(codec, &values[..1])?));
        seeds.push((format!("{name}-three"), batch(codec, &values)?));
    }
    let mut idempotent = BatchBuilder::default()
        .producer(1000, 0, 5)
        .value(NOW.0, b"once")
        .value(NOW.0 + 1, b"twice")
        .build()?;
    set_base_offset(&mut idempotent, Offset(77))?;
    seeds.push(("idempotent".into(), idempotent));
    let mut append_time = batch(Compression::Lz4, &values)?;
    set_log_append_time(&mut append_time, NOW)?;
    seeds.push(("log-append-time".into(), append_time));
    let mut several = Vec::new();
    for (i, codec) in Compression::ALL.into_iter().enumerate() {
        let mut one = batch(codec, &values[..2])?;
        set_base_offset(&mut one, Offset(i as i64 * 2))?;
        several.extend_from_slice(&one);
    }
    seeds.push(("concatenated".into(), several));
    Ok(seeds)
}

/// The files of a log written through `runnel_storage::Log`.
struct LogFiles {
    segments: Vec<(PathBuf, Vec<u8>)>,
    index: Vec<u8>,
    time_index: Vec<u8>,
}

fn write_log(config: LogConfig, batches: &[Vec<u8>]) -> Result<LogFiles> {
    let dir = tempfile::tempdir()?;
    let (mut log, _) = Log::open(dir.path(), config, false)?;
    for (i, batch) in batches.iter().enumerate() {
        let mut batch = batch.clone();
        log.append(&mut batch, Timestamp(NOW.0 + i as i64))?;
    }
    log.close()?;
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir.path())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            let bytes = std::fs::read(&path)?;
            segments.push((path, bytes));
        }
    }
    segments.sort();
    let first = dir.path().join(format!("{:020}", 0));
    Ok(LogFiles {
        segments,
        index: std::fs::read(first.with_extension("index")).unwrap_or_default(),
        time_index: std::fs::read(first.with_extension("timeindex")).unwrap_or_default(),
    })
}

fn segment_input(flags: u8, files: &LogFiles) -> SegmentInput {
    let log: Vec<u8> = files
        .segments
        .iter()
        .flat_map(|(_, bytes)| bytes.iter().copied())
        .collect();
    let split = files.segments.first().map_or(0, |(_, b)| b.len());
    SegmentInput {
        flags,
        index: files.index.clone(),
        time_index: files.time_index.clone(),
        split: u16::try_from(split).unwrap_or(u16::MAX),
        log,
    }
}

/// Segment directories written by the log itself: every codec, idempotent
/// producers, dense indexes, a rolled log, and torn or garbage tails.
fn segment_seeds() -> Result<Vec<(String, Vec<u8>)>> {
    let mut seeds = Vec::new();
    let values: [&[u8]; 2] = [b"key-less value", b"another value"];
    let all_codecs: Vec<Vec<u8>> = Compression::ALL
        .into_iter()
        .map(|codec| batch(codec, &values))
        .collect::<Result<_>>()?;
    let plain = write_log(LogConfig::default(), &all_codecs)?;
    let whole = segment_input(0, &plain);
    seeds.push(("codecs".into(), whole.encode()));
    seeds.push((
        "codecs-clean".into(),
        segment_input(FLAG_CLEAN_SHUTDOWN, &plain).encode(),
    ));

    let mut torn = whole.clone();
    torn.log.truncate(torn.log.len() - 7);
    seeds.push(("torn-tail".into(), torn.encode()));
    let mut garbage = whole.clone();
    garbage.log.extend_from_slice(&[0xAB; 40]);
    garbage.flags = FLAG_FIX_CRCS;
    seeds.push(("garbage-tail".into(), garbage.encode()));
    let mut flipped = whole.clone();
    let middle = flipped.log.len() / 2;
    flipped.log[middle] ^= 0x20;
    seeds.push(("flipped-byte".into(), flipped.encode()));

    let idempotent: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            BatchBuilder::default()
                .producer(1000, 0, i * 2)
                .value(NOW.0, b"one")
                .value(NOW.0, b"two")
                .build()
        })
        .collect::<std::result::Result<_, _>>()?;
    let producers = write_log(LogConfig::default(), &idempotent)?;
    seeds.push(("idempotent".into(), segment_input(0, &producers).encode()));

    let dense = LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let small: Vec<Vec<u8>> = (0..6)
        .map(|i| batch(Compression::ALL[i % Compression::ALL.len()], &values[..1]))
        .collect::<Result<_>>()?;
    let indexed = write_log(dense.clone(), &small)?;
    seeds.push(("indexed".into(), segment_input(0, &indexed).encode()));
    seeds.push((
        "indexed-clean".into(),
        segment_input(FLAG_CLEAN_SHUTDOWN, &indexed).encode(),
    ));

    let rolling = LogConfig {
        segment_bytes: 300,
        ..dense
    };
    let rolled = write_log(rolling, &small)?;
    if rolled.segments.len() < 2 {
        return Err("the rolling log did not roll".into());
    }
    let two = segment_input(FLAG_TWO_SEGMENTS, &rolled);
    seeds.push(("two-segments".into(), two.encode()));
    let mut two_clean = two.clone();
    two_clean.flags |= FLAG_CLEAN_SHUTDOWN;
    seeds.push(("two-segments-clean".into(), two_clean.encode()));
    Ok(seeds)
}
