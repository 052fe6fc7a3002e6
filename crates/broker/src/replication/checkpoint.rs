//! The high watermarks of every hosted partition, checkpointed in the data
//! directory's `replication-offset-checkpoint` (Kafka's file and format:
//! a version line `0`, the entry count, then `topic partition offset`
//! lines) every `replica.high.watermark.checkpoint.interval.ms` and at
//! shutdown, so that a restarted node does not start its watermarks — what
//! consumers may read, and what "latest" means — from the log start.
//!
//! The file is written to a temporary name, fsynced and renamed into
//! place; a missing, garbled or partial file only means watermarks start
//! lower (they rise again as followers fetch), so reading it never fails.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::broker::Broker;

/// The file's name in the data directory.
pub(crate) const FILE: &str = "replication-offset-checkpoint";

/// Reads the checkpoint: `(topic, partition) -> high watermark`.
pub(crate) fn read(dir: &Path) -> HashMap<(String, i32), i64> {
    let Ok(text) = fs::read_to_string(dir.join(FILE)) else {
        return HashMap::new();
    };
    parse(&text).unwrap_or_else(|| {
        tracing::warn!(path = %dir.join(FILE).display(), "ignoring an unreadable high-watermark checkpoint");
        HashMap::new()
    })
}

fn parse(text: &str) -> Option<HashMap<(String, i32), i64>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut out = HashMap::with_capacity(count.min(1 << 16));
    for line in lines.by_ref().take(count) {
        let mut fields = line.split_whitespace();
        let (topic, partition, offset) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() {
            return None;
        }
        let offset: i64 = offset.parse().ok()?;
        if offset < 0 {
            return None;
        }
        out.insert((topic.to_string(), partition.parse().ok()?), offset);
    }
    (out.len() == count).then_some(out)
}

fn render(entries: &[(String, i32, i64)]) -> String {
    let mut text = format!("0\n{}\n", entries.len());
    for (topic, partition, offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    text
}

/// Writes the watermarks of every hosted partition.
pub(crate) fn write(broker: &Broker) -> std::io::Result<()> {
    let mut entries = Vec::new();
    for topic in broker.topics.all() {
        for (index, partition) in topic.hosted() {
            entries.push((topic.name.to_string(), index, partition.high_watermark()));
        }
    }
    let dir = &broker.data_dir;
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(render(&entries).as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(FILE))?;
    fs::File::open(dir)?.sync_all()
}

/// Writes the checkpoint every `replica.high.watermark.checkpoint.interval.ms`
/// until `stop` changes, and once more then.
pub(crate) async fn run(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    loop {
        let interval = broker
            .config
            .read()
            .replica_high_watermark_checkpoint_interval_ms()
            .max(100);
        let stopping = tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(u64::try_from(interval).unwrap_or(5000))) => false,
            _ = stop.changed() => true,
        };
        let target = broker.clone();
        match tokio::task::spawn_blocking(move || write(&target)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the high-watermark checkpoint"),
            Err(e) => tracing::warn!(error = %e, "the high-watermark checkpoint task failed"),
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_reads_back_what_was_written() {
        let entries = vec![
            ("orders".to_string(), 0, 42),
            ("orders".to_string(), 3, 0),
            ("__consumer_offsets".to_string(), 17, 9_000_000_000),
        ];
        let text = render(&entries);
        assert!(text.starts_with("0\n3\norders 0 42\n"), "{text}");
        let parsed = parse(&text).expect("parses");
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            parsed[&("__consumer_offsets".to_string(), 17)],
            9_000_000_000
        );
    }

    #[test]
    fn a_damaged_checkpoint_is_refused_whole() {
        for bad in [
            "",
            "1\n0\n",
            "0\n2\norders 0 1\n",
            "0\n1\norders x 1\n",
            "0\n1\norders 0 -5\n",
            "0\n1\norders 0 1 extra\n",
            "0\nmany\n",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(parse("0\n0\n").map(|m| m.len()), Some(0));
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_empty(), "a missing file is empty");
        fs::write(dir.path().join(FILE), "garbage").unwrap();
        assert!(read(dir.path()).is_empty());
    }
}
