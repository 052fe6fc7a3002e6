//! Connection, version negotiation and metadata against Runnel and Tansu.

mod common;

use common::{Kind, TestBroker, ALL};
use runnel_client::{ClientConfig, Cluster, Error};

#[tokio::test]
async fn metadata_lists_the_broker_it_bootstrapped_from() {
    for kind in ALL {
        let broker = TestBroker::start(kind, &[]).await;
        let cluster = Cluster::connect(ClientConfig::new(broker.bootstrap()))
            .await
            .unwrap();
        let metadata = cluster.metadata();
        assert_eq!(metadata.brokers.len(), 1, "{kind:?}: {metadata:?}");
        let only = metadata.brokers.values().next().unwrap();
        assert_eq!(only.addr(), broker.bootstrap(), "{kind:?}");
        // The pooled connection negotiated versions: Metadata is served.
        let connection = cluster.broker(only.id).await.unwrap();
        assert!(connection
            .broker_versions(kafka_protocol::messages::ApiKey::Metadata)
            .is_some());
        broker.stop().await;
    }
}

#[tokio::test]
async fn unreachable_bootstrap_is_a_typed_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Cluster::connect(
        ClientConfig::new(&format!("127.0.0.1:{port}"))
            .connect_timeout(std::time::Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NoBrokerReachable { .. }), "{err:?}");
    assert!(err.is_retriable());
}

#[tokio::test]
async fn unknown_topic_is_reported_as_such() {
    let broker = TestBroker::start(Kind::Runnel, &[("auto.create.topics.enable", "false")]).await;
    let cluster = Cluster::connect(ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    let err = cluster.topic("no-such-topic").await.unwrap_err();
    assert!(
        matches!(err, Error::UnknownTopic(ref t) if t == "no-such-topic"),
        "{err:?}"
    );
    broker.stop().await;
}

/// The coordinator holds a JoinGroup for `group.initial.rebalance.delay.ms`:
/// longer than this client's request timeout, which `send_within` outwaits.
#[tokio::test]
async fn a_request_held_longer_than_the_request_timeout_can_be_awaited() {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::{GroupId, JoinGroupRequest};
    use kafka_protocol::protocol::StrBytes;
    use std::time::{Duration, Instant};

    let broker = TestBroker::start(
        Kind::Runnel,
        &[("group.initial.rebalance.delay.ms", "1500")],
    )
    .await;
    let cluster = Cluster::connect(
        ClientConfig::new(broker.bootstrap()).request_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let id = cluster.metadata().brokers.keys().next().copied().unwrap();
    let connection = cluster.broker(id).await.unwrap();
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("held")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(StrBytes::from_string(member.to_owned()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(bytes::Bytes::from_static(b"m"))])
    };
    // KIP-394: the first JoinGroup only hands out a member id.
    let first = connection.send(&join("")).await.unwrap();
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let member = first.member_id.to_string();

    let err = connection.send(&join(&member)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");

    let start = Instant::now();
    let joined = connection
        .send_within(&join(&member), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.member_id.as_str(), member);
    assert!(start.elapsed() < Duration::from_secs(10));
    broker.stop().await;
}
