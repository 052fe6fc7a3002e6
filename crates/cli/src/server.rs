//! `runnel server`: runs a broker.

use std::path::PathBuf;

use anyhow::Context;
use runnel_model::config::{BrokerConfig, ConfigSources};

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// A TOML file of settings under Kafka's names (`"log.retention.ms" = 60000`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where partitions and metadata are kept (Kafka's `log.dirs`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Kafka's `listeners`, e.g. PLAINTEXT://127.0.0.1:9092.
    #[arg(long)]
    listeners: Option<String>,
    /// Kafka's `advertised.listeners`.
    #[arg(long)]
    advertised_listeners: Option<String>,
    /// Kafka's `node.id`.
    #[arg(long)]
    node_id: Option<i32>,
    /// Any setting by its Kafka name: `--override log.retention.ms=60000`.
    /// Repeatable; wins over the file and the environment.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("runnel")
        .build()?;
    runtime.block_on(async move {
        let server = runnel_broker::Server::start(config).await?;
        println!("runnel listening on {}", server.local_addr());
        wait_for_signal().await?;
        tracing::info!("shutting down");
        server.shutdown().await
    })
}

fn load_config(args: &ServerArgs) -> anyhow::Result<BrokerConfig> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            Some(
                BrokerConfig::from_toml_str(&text)
                    .with_context(|| format!("config file {}", path.display()))?,
            )
        }
        None => None,
    };
    let env = std::env::vars()
        .filter(|(k, _)| k.starts_with("RUNNEL_"))
        .collect();
    let mut overrides = Vec::new();
    if let Some(dir) = &args.data_dir {
        overrides.push(("log.dirs".to_string(), dir.display().to_string()));
    }
    if let Some(listeners) = &args.listeners {
        overrides.push(("listeners".to_string(), listeners.clone()));
    }
    if let Some(advertised) = &args.advertised_listeners {
        overrides.push(("advertised.listeners".to_string(), advertised.clone()));
    }
    if let Some(node_id) = args.node_id {
        overrides.push(("node.id".to_string(), node_id.to_string()));
    }
    for item in &args.overrides {
        let (key, value) = item
            .split_once('=')
            .with_context(|| format!("--override {item}: expected KEY=VALUE"))?;
        overrides.push((key.trim().to_string(), value.trim().to_string()));
    }
    BrokerConfig::load(ConfigSources {
        file,
        env,
        overrides,
    })
    .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}
