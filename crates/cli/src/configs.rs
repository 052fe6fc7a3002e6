//! `runnel configs`: describe and alter topic and broker configs.

use runnel_client::admin::{AlterConfigOp, ConfigResource};
use serde_json::json;

use crate::cluster::{admin, error_text};
use crate::global::Global;
use crate::output::print_rows;
use crate::topics::parse_key_value;

/// Which resource's configs.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// A topic, by name.
    #[arg(long)]
    topic: Option<String>,
    /// A broker, by node id.
    #[arg(long)]
    broker: Option<i32>,
}

impl Target {
    fn resource(&self) -> anyhow::Result<ConfigResource> {
        match (&self.topic, self.broker) {
            (Some(topic), None) => Ok(ConfigResource::Topic(topic.clone())),
            (None, Some(id)) => Ok(ConfigResource::Broker(id)),
            _ => anyhow::bail!("give exactly one of --topic and --broker"),
        }
    }
}

/// `runnel configs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Prints every config of a topic or a broker: value, source, and whether it
    /// is read-only, the default, or sensitive.
    Describe {
        #[command(flatten)]
        target: Target,
    },
    /// Sets configs and reverts others to their defaults.
    Alter {
        #[command(flatten)]
        target: Target,
        /// A config to set, as `key=value`; repeat for more.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// A config to revert to its default; repeat for more.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

/// Runs one `configs` subcommand.
pub async fn run(global: &Global, command: Command) -> anyhow::Result<()> {
    let admin = admin(global).await?;
    match command {
        Command::Describe { target } => {
            let resource = target.resource()?;
            let entries = admin
                .describe_configs(&resource)
                .await
                .map_err(|e| anyhow::anyhow!("cannot describe {resource}: {}", error_text(&e)))?;
            let rows = entries
                .into_iter()
                .map(|e| {
                    vec![
                        json!(e.name),
                        json!(e.value),
                        json!(e.source.name()),
                        json!(e.read_only),
                        json!(e.is_default),
                        json!(e.sensitive),
                    ]
                })
                .collect();
            print_rows(
                global.output,
                &[
                    "Name",
                    "Value",
                    "Source",
                    "Read only",
                    "Default",
                    "Sensitive",
                ],
                rows,
            );
            Ok(())
        }
        Command::Alter {
            target,
            set,
            delete,
        } => {
            let resource = target.resource()?;
            if set.is_empty() && delete.is_empty() {
                anyhow::bail!("nothing to alter: give --set or --delete");
            }
            let ops: Vec<AlterConfigOp> = set
                .into_iter()
                .map(|(k, v)| AlterConfigOp::Set(k, v))
                .chain(delete.into_iter().map(AlterConfigOp::Delete))
                .collect();
            admin
                .incremental_alter_configs(&resource, &ops)
                .await
                .map_err(|e| anyhow::anyhow!("cannot alter {resource}: {}", error_text(&e)))?;
            let rows = ops
                .iter()
                .map(|op| {
                    let (action, value) = match op {
                        AlterConfigOp::Set(_, v) => ("set", json!(v)),
                        _ => ("deleted", serde_json::Value::Null),
                    };
                    vec![json!(op.key()), json!(action), value]
                })
                .collect();
            print_rows(global.output, &["Name", "Action", "Value"], rows);
            Ok(())
        }
    }
}
