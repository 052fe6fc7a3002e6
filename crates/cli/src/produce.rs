//! `runnel produce`.

use crate::global::Global;

/// `runnel produce` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topic.
    pub topic: String,
}

/// Runs `runnel produce`.
pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<()> {
    anyhow::bail!("runnel produce is not implemented yet")
}
