//! The records every codec run produces, and the checks on what comes back.
//!
//! Mirrors compat/python/records.py: distinct keys, values of varied size (compressible
//! words mixed with binary bytes, a few large ones that span batches), one or two
//! headers, CreateTime `base_ts + i`, partition `i % partitions`.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, ensure};

/// Codecs every client is run with, by their Kafka `compression.type` names.
pub const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
/// Records produced per codec.
pub const RECORD_COUNT: usize = 10_000;
/// Partitions of every test topic.
pub const PARTITIONS: i32 = 3;

/// One record as produced, or as consumed (then with its offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp_ms: i64,
    pub partition: i32,
    pub offset: i64,
}

/// A small deterministic generator (xorshift64*), so runs are reproducible.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// `count` records keyed `{prefix}-key-{i:06}`.
pub fn generate(prefix: &str, count: usize, base_ts_ms: i64) -> Vec<Record> {
    const WORDS: [&[u8]; 7] = [
        b"runnel",
        b"kafka",
        b"partition",
        b"offset",
        b"segment",
        b"batch",
        b"\x00\x01",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..count)
        .map(|i| {
            let size = if i % 997 == 0 {
                20_000 + rng.below(10_000)
            } else if i % 10 == 0 {
                1 + rng.below(7)
            } else {
                16 + rng.below(1_484)
            };
            let mut value = Vec::with_capacity(size + 16);
            while value.len() < size {
                if rng.below(10) < 6 {
                    value.extend_from_slice(WORDS[rng.below(WORDS.len())]);
                } else {
                    let n = 1 + rng.below(11);
                    value.extend((0..n).map(|_| rng.next() as u8));
                }
            }
            value.truncate(size);
            let mut headers = vec![("seq".to_string(), i.to_string().into_bytes())];
            if i % 2 == 0 {
                headers.push((
                    "blob".to_string(),
                    vec![(i % 256) as u8, 0, 255, ((i * 7) % 256) as u8],
                ));
            }
            Record {
                key: format!("{prefix}-key-{i:06}").into_bytes(),
                value,
                headers,
                timestamp_ms: base_ts_ms + i as i64,
                partition: i as i32 % PARTITIONS,
                offset: -1,
            }
        })
        .collect()
}

/// Checks that every produced record came back exactly once, byte-identical
/// (key, value, headers, timestamp), in its partition, at offsets 0..n-1, in the order
/// it was produced. Returns the consumed records per partition, by offset.
pub fn verify_consumed(
    produced: &[Record],
    consumed: Vec<Record>,
) -> anyhow::Result<BTreeMap<i32, Vec<Record>>> {
    let by_key: HashMap<&[u8], (usize, &Record)> = produced
        .iter()
        .enumerate()
        .map(|(i, r)| (r.key.as_slice(), (i, r)))
        .collect();
    ensure!(
        by_key.len() == produced.len(),
        "generator produced duplicate keys"
    );
    let mut per_partition: BTreeMap<i32, Vec<Record>> =
        (0..PARTITIONS).map(|p| (p, Vec::new())).collect();
    for record in consumed {
        match per_partition.get_mut(&record.partition) {
            Some(records) => records.push(record),
            None => bail!("record from unknown partition {}", record.partition),
        }
    }
    let mut problems = Vec::new();
    let mut seen = 0usize;
    for (partition, records) in per_partition.iter_mut() {
        records.sort_by_key(|r| r.offset);
        let mut last_index: Option<usize> = None;
        for (position, record) in records.iter().enumerate() {
            if record.offset != position as i64 {
                problems.push(format!(
                    "partition {partition}: offset {} at position {position} (offsets not contiguous from 0)",
                    record.offset
                ));
            }
            let Some(&(index, expected)) = by_key.get(record.key.as_slice()) else {
                problems.push(format!(
                    "p{partition}@{}: unknown key {:?}",
                    record.offset,
                    lossy(&record.key)
                ));
                continue;
            };
            seen += 1;
            if last_index.is_some_and(|last| index <= last) {
                problems.push(format!(
                    "p{partition}@{}: record #{index} out of order",
                    record.offset
                ));
            }
            last_index = Some(index);
            let mut differs = Vec::new();
            if record.partition != expected.partition {
                differs.push("partition");
            }
            if record.value != expected.value {
                differs.push("value");
            }
            if record.headers != expected.headers {
                differs.push("headers");
            }
            if record.timestamp_ms != expected.timestamp_ms {
                differs.push("timestamp");
            }
            if !differs.is_empty() {
                problems.push(format!(
                    "p{partition}@{} {}: {} differ",
                    record.offset,
                    lossy(&record.key),
                    differs.join(", ")
                ));
            }
            if problems.len() > 20 {
                break;
            }
        }
    }
    if seen != produced.len() {
        problems.push(format!(
            "consumed {seen} known records of {} produced",
            produced.len()
        ));
    }
    if !problems.is_empty() {
        bail!(
            "{} problem(s):\n{}",
            problems.len(),
            problems.into_iter().take(20).collect::<Vec<_>>().join("\n")
        );
    }
    Ok(per_partition)
}

/// Kafka's ListOffsets by timestamp: the first offset whose timestamp is at or after
/// `target_ms`, or -1 when there is none.
pub fn expected_offset_for_time(records: &[Record], target_ms: i64) -> i64 {
    records
        .iter()
        .find(|r| r.timestamp_ms >= target_ms)
        .map_or(-1, |r| r.offset)
}

/// (partition, target timestamp, expected offset): just before a middle record (between
/// two records of the partition), exactly the first record, and after every record.
pub fn time_probes(per_partition: &BTreeMap<i32, Vec<Record>>) -> Vec<(i32, i64, i64)> {
    let mut probes = Vec::new();
    for (&partition, records) in per_partition {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            continue;
        };
        let middle = &records[records.len() / 2];
        for target in [
            middle.timestamp_ms - 1,
            first.timestamp_ms,
            last.timestamp_ms + 10_000,
        ] {
            probes.push((partition, target, expected_offset_for_time(records, target)));
        }
    }
    probes
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
