//! `runnel topics`.

use crate::global::Global;

/// `runnel topics` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Not written yet.
    Todo,
}

/// Runs one `topics` subcommand.
pub async fn run(_global: &Global, _command: Command) -> anyhow::Result<()> {
    anyhow::bail!("runnel topics is not implemented yet")
}
