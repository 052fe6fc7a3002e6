//! `runnel perf consume`.

use crate::global::Global;

/// `runnel perf consume` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topic.
    pub topic: String,
}

/// Runs `runnel perf consume`.
pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<()> {
    anyhow::bail!("runnel perf consume is not implemented yet")
}
