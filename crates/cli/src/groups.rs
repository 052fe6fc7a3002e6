//! `runnel groups`.

use crate::global::Global;

/// `runnel groups` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Not written yet.
    Todo,
}

/// Runs one `groups` subcommand.
pub async fn run(_global: &Global, _command: Command) -> anyhow::Result<()> {
    anyhow::bail!("runnel groups is not implemented yet")
}
