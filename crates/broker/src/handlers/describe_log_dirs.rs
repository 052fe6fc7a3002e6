//! DescribeLogDirs: the data directory, its partitions' sizes and (v4) the
//! file system's capacity.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::connection::RequestContext;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };

pub(crate) fn handle(
    ctx: &RequestContext,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let broker = &ctx.broker;
    // None: every partition; Some: only those asked for.
    let wanted: Option<BTreeMap<String, Vec<i32>>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let mut topics = Vec::new();
    for topic in broker.topics.all() {
        let selected: Vec<i32> = match &wanted {
            None => (0..topic.partitions.len() as i32).collect(),
            Some(map) => match map.get(topic.name.as_str()) {
                Some(list) => list.clone(),
                None => continue,
            },
        };
        let partitions: Vec<_> = selected
            .into_iter()
            .filter_map(|index| {
                let partition = topic.partition(index)?;
                let size = partition.log.lock().size_bytes();
                Some(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(index)
                        .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX)),
                )
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(kafka_protocol::messages::TopicName(str_bytes(
                        topic.name.to_string(),
                    )))
                    .with_partitions(partitions),
            );
        }
    }
    let (total, usable) = match rustix::fs::statvfs(&broker.data_dir) {
        Ok(stat) => (
            (stat.f_blocks.saturating_mul(stat.f_frsize)) as i64,
            (stat.f_bavail.saturating_mul(stat.f_frsize)) as i64,
        ),
        Err(_) => (-1, -1),
    };
    let dir = std::fs::canonicalize(&broker.data_dir).unwrap_or_else(|_| broker.data_dir.clone());
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable)])
}
