//! Topic creation through the admin API.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

/// `create` options.
#[derive(Debug, Args)]
pub struct CreateOptions {
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Replicas of each partition.
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// Topic configs, `key=value`, repeatable (`min.insync.replicas=2`).
    #[arg(long = "config")]
    configs: Vec<String>,
}

/// Creates the topic; TOPIC_ALREADY_EXISTS counts as success.
pub fn create(bootstrap: &str, options: &CreateOptions) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating the admin client")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut topic = NewTopic::new(
        &options.topic,
        options.partitions,
        TopicReplication::Fixed(options.replication_factor),
    );
    for config in &options.configs {
        let (key, value) = config
            .split_once('=')
            .with_context(|| format!("--config {config:?} is not key=value"))?;
        topic = topic.set(key, value);
    }
    let admin_options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = runtime.block_on(admin.create_topics([&topic], &admin_options))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}
