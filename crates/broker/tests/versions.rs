//! Every served API answers at every version it advertises: the response
//! encodes and decodes at that version.

mod common;

use common::TestBroker;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn range(api: ApiKey) -> (i16, i16) {
    let (_, min, max) = runnel_broker::supported_versions()
        .into_iter()
        .find(|(k, _, _)| *k == api as i16)
        .unwrap();
    // Produce advertises v0 but serves v3 and later.
    if api == ApiKey::Produce {
        (3, max)
    } else {
        (min, max)
    }
}

#[tokio::test]
async fn every_api_answers_at_every_advertised_version() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;

    let (lo, hi) = range(ApiKey::CreateTopics);
    for v in lo..=hi {
        let topic = format!("v{v}");
        let r: CreateTopicsResponse = c
            .call(
                ApiKey::CreateTopics,
                v,
                &CreateTopicsRequest::default().with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(name(&topic))
                        .with_num_partitions(2)
                        .with_replication_factor(1),
                ]),
            )
            .await;
        assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}");
    }

    let (lo, hi) = range(ApiKey::Metadata);
    for v in lo..=hi {
        let topics = if v == 0 { Some(vec![]) } else { None };
        let r: MetadataResponse = c
            .call(
                ApiKey::Metadata,
                v,
                &MetadataRequest::default().with_topics(topics),
            )
            .await;
        assert!(r.topics.len() >= 2, "Metadata v{v}");
        assert_eq!(r.brokers.len(), 1);
    }

    let batch = runnel_protocol::batch::BatchBuilder::default()
        .value(runnel_model::Timestamp::now().0, b"x")
        .build()
        .unwrap();
    let (lo, hi) = range(ApiKey::Produce);
    for v in lo..=hi {
        let r: ProduceResponse = c
            .call(
                ApiKey::Produce,
                v,
                &ProduceRequest::default()
                    .with_acks(1)
                    .with_timeout_ms(1000)
                    .with_topic_data(vec![produce_request::TopicProduceData::default()
                        .with_name(name("v2"))
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch.clone().into())),
                        ])]),
            )
            .await;
        assert_eq!(
            r.responses[0].partition_responses[0].error_code, 0,
            "Produce v{v}"
        );
    }

    let (lo, hi) = range(ApiKey::Fetch);
    for v in lo..=hi {
        let topic_id = broker_topic_id(&mut c, "v2").await;
        let r: FetchResponse = c
            .call(
                ApiKey::Fetch,
                v,
                &FetchRequest::default()
                    .with_max_wait_ms(0)
                    .with_max_bytes(1 << 20)
                    .with_session_epoch(-1)
                    .with_topics(vec![fetch_request::FetchTopic::default()
                        .with_topic(name("v2"))
                        .with_topic_id(topic_id)
                        .with_partitions(vec![fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20)])]),
            )
            .await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert!(
            !p.records.as_ref().unwrap().is_empty(),
            "Fetch v{v} returns records"
        );
    }

    let (lo, hi) = range(ApiKey::ListOffsets);
    for v in lo..=hi {
        for ts in [-1i64, -2, 0] {
            let r: ListOffsetsResponse = c
                .call(
                    ApiKey::ListOffsets,
                    v,
                    &ListOffsetsRequest::default().with_topics(vec![
                        list_offsets_request::ListOffsetsTopic::default()
                            .with_name(name("v2"))
                            .with_partitions(vec![
                                list_offsets_request::ListOffsetsPartition::default()
                                    .with_partition_index(0)
                                    .with_timestamp(ts),
                            ]),
                    ]),
                )
                .await;
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "ListOffsets v{v} ts {ts}");
            if ts == -1 {
                assert!(p.offset > 0, "ListOffsets v{v} latest: {}", p.offset);
            } else {
                // Earliest, and the first record with a timestamp >= 0.
                assert_eq!(p.offset, 0, "ListOffsets v{v} ts {ts}");
            }
        }
    }

    let (lo, hi) = range(ApiKey::DescribeConfigs);
    for v in lo..=hi {
        let r: DescribeConfigsResponse = c
            .call(
                ApiKey::DescribeConfigs,
                v,
                &DescribeConfigsRequest::default()
                    .with_include_synonyms(true)
                    .with_include_documentation(v >= 3)
                    .with_resources(vec![
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(StrBytes::from_static_str("v2")),
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(4)
                            .with_resource_name(StrBytes::from_static_str("0")),
                    ]),
            )
            .await;
        assert_eq!(r.results[0].error_code, 0, "DescribeConfigs v{v}");
        assert!(r.results[0]
            .configs
            .iter()
            .any(|c| c.name.as_str() == "retention.ms"));
        assert!(r.results[1]
            .configs
            .iter()
            .any(|c| c.name.as_str() == "log.retention.ms"));
    }

    let (lo, hi) = range(ApiKey::IncrementalAlterConfigs);
    for v in lo..=hi {
        let r: IncrementalAlterConfigsResponse = c
            .call(
                ApiKey::IncrementalAlterConfigs,
                v,
                &IncrementalAlterConfigsRequest::default().with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("v2"))
                        .with_configs(vec![
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(StrBytes::from_static_str("retention.ms"))
                                .with_config_operation(0)
                                .with_value(Some(StrBytes::from_static_str("3600000"))),
                        ]),
                ]),
            )
            .await;
        assert_eq!(r.responses[0].error_code, 0, "IncrementalAlterConfigs v{v}");
    }

    let (lo, hi) = range(ApiKey::AlterConfigs);
    for v in lo..=hi {
        let r: AlterConfigsResponse = c
            .call(
                ApiKey::AlterConfigs,
                v,
                &AlterConfigsRequest::default().with_resources(vec![
                    alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("v2"))
                        .with_configs(vec![alter_configs_request::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("segment.bytes"))
                            .with_value(Some(StrBytes::from_static_str("2097152")))]),
                ]),
            )
            .await;
        assert_eq!(r.responses[0].error_code, 0, "AlterConfigs v{v}");
    }

    let (lo, hi) = range(ApiKey::CreatePartitions);
    for v in lo..=hi {
        let r: CreatePartitionsResponse = c
            .call(
                ApiKey::CreatePartitions,
                v,
                &CreatePartitionsRequest::default().with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(name("v2"))
                        .with_count(3 + i32::from(v)),
                ]),
            )
            .await;
        assert_eq!(r.results[0].error_code, 0, "CreatePartitions v{v}");
    }

    let (lo, hi) = range(ApiKey::DeleteRecords);
    for v in lo..=hi {
        let r: DeleteRecordsResponse = c
            .call(
                ApiKey::DeleteRecords,
                v,
                &DeleteRecordsRequest::default().with_topics(vec![
                    delete_records_request::DeleteRecordsTopic::default()
                        .with_name(name("v2"))
                        .with_partitions(vec![
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(1),
                        ]),
                ]),
            )
            .await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.low_watermark),
            (0, 1),
            "DeleteRecords v{v}"
        );
    }

    let (lo, hi) = range(ApiKey::DescribeCluster);
    for v in lo..=hi {
        let r: DescribeClusterResponse = c
            .call(
                ApiKey::DescribeCluster,
                v,
                &DescribeClusterRequest::default(),
            )
            .await;
        assert_eq!(r.error_code, 0, "DescribeCluster v{v}");
        assert_eq!(r.brokers.len(), 1);
    }

    let (lo, hi) = range(ApiKey::DescribeLogDirs);
    for v in lo..=hi {
        let r: DescribeLogDirsResponse = c
            .call(
                ApiKey::DescribeLogDirs,
                v,
                &DescribeLogDirsRequest::default().with_topics(None),
            )
            .await;
        assert_eq!(r.results.len(), 1, "DescribeLogDirs v{v}");
        assert!(r.results[0]
            .topics
            .iter()
            .any(|t| t.name.0.as_str() == "v2"));
    }

    let (lo, hi) = range(ApiKey::InitProducerId);
    let mut ids = Vec::new();
    for v in lo..=hi {
        let r: InitProducerIdResponse = c
            .call(
                ApiKey::InitProducerId,
                v,
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60000),
            )
            .await;
        assert_eq!(r.error_code, 0, "InitProducerId v{v}");
        ids.push(r.producer_id.0);
    }
    ids.dedup();
    assert_eq!(ids.len() as i16, hi - lo + 1, "fresh producer ids");

    let (lo, hi) = range(ApiKey::DeleteTopics);
    for v in lo..=hi {
        let topic = format!("v{}", v.min(7));
        let request = if v >= 6 {
            DeleteTopicsRequest::default()
                .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(name(&topic)))])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)])
        };
        let r: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, v, &request).await;
        let code = r.responses[0].error_code;
        assert!(code == 0 || code == 3, "DeleteTopics v{v}: {code}");
    }
    broker.stop().await;
}

async fn broker_topic_id(c: &mut common::RawClient, topic: &str) -> uuid::Uuid {
    let r: MetadataResponse = c
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic))),
            ])),
        )
        .await;
    r.topics[0].topic_id
}
