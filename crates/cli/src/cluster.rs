//! `runnel cluster`, and what every admin subcommand (topics, groups, configs,
//! cluster) shares: the admin client, Kafka error names, per-item failures.
//! `cluster up` and `down`, a local cluster of child processes, are in [`local`].

mod local;
mod node_process;

use std::collections::BTreeMap;
use std::fmt::Display;

use runnel_client::admin::Admin;
use runnel_client::{Error, ResponseError};
use serde_json::{json, Value};

use crate::global::Global;
use crate::output::{print_json, print_rows, Output};

/// `runnel cluster` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Prints the cluster id, the controller and the brokers.
    Describe,
    /// Starts a local development cluster: N `runnel server` processes on
    /// 127.0.0.1, each both broker and controller, with data under --dir.
    Up(local::UpArgs),
    /// Stops the local cluster `up` started (its data is kept).
    Down(local::DownArgs),
}

/// Runs one `cluster` subcommand.
pub async fn run(global: &Global, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Describe => describe(global).await,
        Command::Up(args) => local::up(global, args).await,
        Command::Down(args) => local::down(global, args),
    }
}

async fn describe(global: &Global) -> anyhow::Result<()> {
    let admin = admin(global).await?;
    let cluster = admin
        .describe_cluster()
        .await
        .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
    let brokers: Vec<Vec<Value>> = cluster
        .brokers
        .iter()
        .map(|b| vec![json!(b.id), json!(b.host), json!(b.port), json!(b.rack)])
        .collect();
    match global.output {
        Output::Json => {
            let keys = ["id", "host", "port", "rack"];
            let brokers: Vec<Value> = brokers
                .into_iter()
                .map(|row| Value::Object(keys.iter().map(|k| k.to_string()).zip(row).collect()))
                .collect();
            print_json(&json!({
                "cluster_id": cluster.cluster_id,
                "controller": cluster.controller,
                "brokers": brokers,
            }));
        }
        Output::Table => {
            println!(
                "Cluster id: {}\nController: {}",
                cluster.cluster_id.as_deref().unwrap_or("-"),
                cluster.controller
            );
            print_rows(Output::Table, &["Id", "Host", "Port", "Rack"], brokers);
        }
    }
    Ok(())
}

/// The admin client for `--bootstrap-server`, with `--timeout-ms` as its call timeout.
pub async fn admin(global: &Global) -> anyhow::Result<Admin> {
    Ok(Admin::new(global.connect().await?).with_timeout(global.timeout()))
}

/// Kafka's name for an error code: `TopicAlreadyExists` -> `TOPIC_ALREADY_EXISTS`.
pub fn error_name(error: ResponseError) -> String {
    let camel = format!("{error:?}");
    if let ResponseError::Unknown(code) = error {
        return format!("UNKNOWN_ERROR_CODE_{code}");
    }
    let mut name = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// An error as the CLI prints it: broker errors by their Kafka name, so scripts and
/// people can search for `TOPIC_ALREADY_EXISTS` and the like.
pub fn error_text(error: &Error) -> String {
    match error {
        Error::Broker {
            error,
            message,
            context,
        } => {
            let detail = message.clone().unwrap_or_else(|| error.to_string());
            format!("{context}: {} ({detail})", error_name(*error))
        }
        Error::UnknownTopic(topic) => format!("unknown topic {topic} (UNKNOWN_TOPIC_OR_PARTITION)"),
        other => other.to_string(),
    }
}

/// The successes of a per-item answer, or one error naming every failed item.
pub fn all_ok<K: Ord + Display, T>(
    what: &str,
    results: BTreeMap<K, Result<T, Error>>,
) -> anyhow::Result<BTreeMap<K, T>> {
    let mut ok = BTreeMap::new();
    let mut failed = Vec::new();
    for (key, result) in results {
        match result {
            Ok(value) => {
                ok.insert(key, value);
            }
            Err(e) => failed.push(format!("{key}: {}", error_text(&e))),
        }
    }
    if failed.is_empty() {
        Ok(ok)
    } else {
        anyhow::bail!("{what} failed for {}", failed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(
            error_name(ResponseError::TopicAlreadyExists),
            "TOPIC_ALREADY_EXISTS"
        );
        assert_eq!(
            error_name(ResponseError::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            error_name(ResponseError::Unknown(999)),
            "UNKNOWN_ERROR_CODE_999"
        );
    }

    #[test]
    fn per_item_failures_are_all_named() {
        let results = BTreeMap::from([
            ("a".to_owned(), Ok(())),
            (
                "b".to_owned(),
                Err(Error::broker(36, None, "CreateTopics b")),
            ),
        ]);
        let err = all_ok("creating topics", results).unwrap_err().to_string();
        assert!(
            err.contains("b: CreateTopics b: TOPIC_ALREADY_EXISTS"),
            "{err}"
        );
    }
}
