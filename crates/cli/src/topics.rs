//! `runnel topics`: create, list, describe, alter and delete topics.

use anyhow::Context;
use runnel_client::admin::{Admin, AlterConfigOp, ConfigResource, NewTopic, TopicDescription};
use runnel_client::{Error, ResponseError};
use serde_json::{json, Value};

use crate::cluster::{admin, all_ok, error_text};
use crate::global::Global;
use crate::output::{print_json, print_rows, Output};

/// `runnel topics` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Creates a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (the broker's `num.partitions` if not given).
        #[arg(long)]
        partitions: Option<i32>,
        /// Replication factor (the broker's `default.replication.factor` if not given).
        #[arg(long = "replication-factor")]
        replication_factor: Option<i16>,
        /// A topic config as `key=value`; repeat for more.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Succeed if the topic already exists.
        #[arg(long = "if-not-exists")]
        if_not_exists: bool,
    },
    /// Lists topics.
    List {
        /// Include internal topics (`__consumer_offsets`, ...).
        #[arg(long)]
        internal: bool,
    },
    /// Describes topics (all of them if none is named): partitions with leader,
    /// replicas and in-sync replicas, and the configs that differ from the defaults.
    Describe {
        /// Topic names.
        names: Vec<String>,
    },
    /// Adds partitions and changes configs.
    Alter {
        /// Topic name.
        name: String,
        /// The new, larger, number of partitions.
        #[arg(long)]
        partitions: Option<i32>,
        /// A config to set, as `key=value`; repeat for more.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// A config to revert to its default; repeat for more.
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
    },
    /// Deletes topics.
    Delete {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Succeed for topics that do not exist.
        #[arg(long = "if-exists")]
        if_exists: bool,
    },
}

/// Runs one `topics` subcommand.
pub async fn run(global: &Global, command: Command) -> anyhow::Result<()> {
    let admin = admin(global).await?;
    match command {
        Command::Create {
            name,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
        } => {
            let topic = NewTopic {
                name: name.clone(),
                partitions: partitions.unwrap_or(-1),
                replication_factor: replication_factor.unwrap_or(-1),
                configs,
            };
            create(global, &admin, topic, if_not_exists).await
        }
        Command::List { internal } => list(global, &admin, internal).await,
        Command::Describe { names } => describe(global, &admin, names).await,
        Command::Alter {
            name,
            partitions,
            configs,
            delete_configs,
        } => alter(global, &admin, &name, partitions, configs, delete_configs).await,
        Command::Delete { names, if_exists } => delete(global, &admin, &names, if_exists).await,
    }
}

/// `key=value` as a pair.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

async fn create(
    global: &Global,
    admin: &Admin,
    topic: NewTopic,
    if_not_exists: bool,
) -> anyhow::Result<()> {
    let name = topic.name.clone();
    let mut results = admin
        .create_topics(vec![topic], false)
        .await
        .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
    let status = match results.remove(&name) {
        Some(Ok(())) => "created",
        Some(Err(e)) if if_not_exists && e.code() == Some(ResponseError::TopicAlreadyExists) => {
            "exists"
        }
        Some(Err(e)) => anyhow::bail!("cannot create topic {name}: {}", error_text(&e)),
        None => anyhow::bail!("the broker did not answer for topic {name}"),
    };
    print_rows(
        global.output,
        &["Topic", "Status"],
        vec![vec![json!(name), json!(status)]],
    );
    Ok(())
}

async fn list(global: &Global, admin: &Admin, internal: bool) -> anyhow::Result<()> {
    let topics = admin
        .list_topics(internal)
        .await
        .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
    let rows = topics
        .into_iter()
        .map(|t| {
            vec![
                json!(t.name),
                json!(t.topic_id.to_string()),
                json!(t.internal),
            ]
        })
        .collect();
    print_rows(global.output, &["Name", "Topic id", "Internal"], rows);
    Ok(())
}

async fn describe(global: &Global, admin: &Admin, mut names: Vec<String>) -> anyhow::Result<()> {
    if names.is_empty() {
        names = admin
            .list_topics(false)
            .await
            .map_err(|e| anyhow::anyhow!(error_text(&e)))?
            .into_iter()
            .map(|t| t.name)
            .collect();
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let described = admin
        .describe_topics(&refs)
        .await
        .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
    let described = all_ok("describing topics", described)?;
    let mut documents = Vec::new();
    for topic in described.values() {
        let configs = changed_configs(admin, &topic.name).await;
        documents.push((topic, configs));
    }
    match global.output {
        Output::Json => print_json(&Value::Array(
            documents
                .iter()
                .map(|(t, configs)| topic_json(t, configs.as_ref()))
                .collect(),
        )),
        Output::Table => {
            for (i, (topic, configs)) in documents.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print_topic_table(topic, configs.as_ref());
            }
        }
    }
    Ok(())
}

/// The topic's configs that are not defaults, or `None` if the broker does not
/// describe configs (the description is still useful without them).
async fn changed_configs(admin: &Admin, topic: &str) -> Option<Vec<(String, String)>> {
    let entries = admin
        .describe_configs(&ConfigResource::Topic(topic.to_owned()))
        .await
        .ok()?;
    Some(
        entries
            .into_iter()
            .filter(|e| !e.is_default)
            .map(|e| {
                let value = if e.sensitive {
                    "(sensitive)".to_owned()
                } else {
                    e.value.unwrap_or_default()
                };
                (e.name, value)
            })
            .collect(),
    )
}

fn topic_json(topic: &TopicDescription, configs: Option<&Vec<(String, String)>>) -> Value {
    json!({
        "name": topic.name,
        "topic_id": topic.topic_id.to_string(),
        "internal": topic.internal,
        "partitions": topic.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "leader": p.leader,
            "replicas": p.replicas,
            "isr": p.isr,
        })).collect::<Vec<_>>(),
        "configs": configs.map(|c| c.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>()),
    })
}

fn print_topic_table(topic: &TopicDescription, configs: Option<&Vec<(String, String)>>) {
    let configs = match configs {
        Some(c) if !c.is_empty() => c
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        Some(_) => "(defaults)".to_owned(),
        None => "-".to_owned(),
    };
    println!(
        "Topic: {}  Id: {}  Partitions: {}{}  Configs: {configs}",
        topic.name,
        topic.topic_id,
        topic.partitions.len(),
        if topic.internal { "  (internal)" } else { "" },
    );
    let rows = topic
        .partitions
        .iter()
        .map(|p| {
            vec![
                json!(p.partition),
                json!(p.leader),
                json!(p.replicas),
                json!(p.isr),
            ]
        })
        .collect();
    print_rows(
        Output::Table,
        &["Partition", "Leader", "Replicas", "ISR"],
        rows,
    );
}

async fn alter(
    global: &Global,
    admin: &Admin,
    name: &str,
    partitions: Option<i32>,
    configs: Vec<(String, String)>,
    delete_configs: Vec<String>,
) -> anyhow::Result<()> {
    if partitions.is_none() && configs.is_empty() && delete_configs.is_empty() {
        anyhow::bail!("nothing to alter: give --partitions, --config or --delete-config");
    }
    let mut done = Vec::new();
    if let Some(count) = partitions {
        admin
            .create_partitions(name, count)
            .await
            .map_err(|e| anyhow::anyhow!(error_text(&e)))
            .with_context(|| format!("cannot grow topic {name} to {count} partitions"))?;
        done.push(vec![json!(name), json!("partitions"), json!(count)]);
    }
    let ops: Vec<AlterConfigOp> = configs
        .into_iter()
        .map(|(k, v)| AlterConfigOp::Set(k, v))
        .chain(delete_configs.into_iter().map(AlterConfigOp::Delete))
        .collect();
    if !ops.is_empty() {
        ensure_topic(admin, name).await?;
        admin
            .incremental_alter_configs(&ConfigResource::Topic(name.to_owned()), &ops)
            .await
            .map_err(|e| anyhow::anyhow!(error_text(&e)))
            .with_context(|| format!("cannot alter the configs of topic {name}"))?;
        for op in &ops {
            let value = match op {
                AlterConfigOp::Set(_, v) => json!(v),
                _ => Value::Null,
            };
            done.push(vec![json!(name), json!(op.key()), value]);
        }
    }
    print_rows(global.output, &["Topic", "Changed", "Value"], done);
    Ok(())
}

/// Fails with UNKNOWN_TOPIC_OR_PARTITION-like clarity when the topic is missing (some
/// brokers accept config changes for topics that do not exist).
async fn ensure_topic(admin: &Admin, name: &str) -> anyhow::Result<()> {
    let described = admin
        .describe_topics(&[name])
        .await
        .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
    all_ok("describing topics", described).map(|_| ())
}

async fn delete(
    global: &Global,
    admin: &Admin,
    names: &[String],
    if_exists: bool,
) -> anyhow::Result<()> {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let results = admin
        .delete_topics(&refs)
        .await
        .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
    let mut rows = Vec::new();
    let results = results
        .into_iter()
        .filter_map(|(name, result)| match result {
            Err(e) if if_exists && is_unknown_topic(&e) => {
                rows.push(vec![json!(name), json!("absent")]);
                None
            }
            other => Some((name, other)),
        })
        .collect();
    for name in all_ok("deleting topics", results)?.into_keys() {
        rows.push(vec![json!(name), json!("deleted")]);
    }
    print_rows(global.output, &["Topic", "Status"], rows);
    Ok(())
}

fn is_unknown_topic(error: &Error) -> bool {
    matches!(error, Error::UnknownTopic(_))
        || error.code() == Some(ResponseError::UnknownTopicOrPartition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_key_value("cleanup.policy=compact,delete"),
            Ok(("cleanup.policy".into(), "compact,delete".into()))
        );
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
