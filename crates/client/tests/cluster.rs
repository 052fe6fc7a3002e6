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
