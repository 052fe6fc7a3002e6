//! `runnel configs`.

use crate::global::Global;

/// `runnel configs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Not written yet.
    Todo,
}

/// Runs one `configs` subcommand.
pub async fn run(_global: &Global, _command: Command) -> anyhow::Result<()> {
    anyhow::bail!("runnel configs is not implemented yet")
}
