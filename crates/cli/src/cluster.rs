//! `runnel cluster`.

use crate::global::Global;

/// `runnel cluster` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Not written yet.
    Todo,
}

/// Runs one `cluster` subcommand.
pub async fn run(_global: &Global, _command: Command) -> anyhow::Result<()> {
    anyhow::bail!("runnel cluster is not implemented yet")
}
