//! Options every client-side subcommand takes.

use std::time::Duration;

use anyhow::Context;
use runnel_client::{ClientConfig, Cluster};

use crate::output::Output;

/// Where the cluster is and how to print.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Brokers to bootstrap from, comma separated.
    #[arg(
        short = 'b',
        long = "bootstrap-server",
        global = true,
        env = "RUNNEL_BOOTSTRAP_SERVER",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap: String,
    /// `table` for people, `json` for scripts.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// How long to wait for the cluster, in milliseconds.
    #[arg(long = "timeout-ms", global = true, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

impl Global {
    /// Client settings for these options.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(&self.bootstrap)
            .client_id("runnel-cli")
            .request_timeout(self.timeout())
            .connect_timeout(self.timeout().min(Duration::from_secs(5)))
    }

    /// `--timeout-ms` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Connects to the cluster.
    pub async fn connect(&self) -> anyhow::Result<std::sync::Arc<Cluster>> {
        Cluster::connect(self.client_config())
            .await
            .with_context(|| format!("cannot reach the cluster at {}", self.bootstrap))
    }
}
