//! `runnel consume`.

use crate::global::Global;

/// `runnel consume` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topic.
    pub topic: String,
}

/// Runs `runnel consume`.
pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<()> {
    anyhow::bail!("runnel consume is not implemented yet")
}
