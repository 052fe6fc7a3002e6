//! `runnel perf produce`.

use crate::global::Global;

/// `runnel perf produce` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topic.
    pub topic: String,
}

/// Runs `runnel perf produce`.
pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<()> {
    anyhow::bail!("runnel perf produce is not implemented yet")
}
