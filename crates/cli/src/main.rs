//! The `runnel` binary: the broker (`runnel server`) and the tools that talk to one.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cluster;
mod configs;
mod consume;
mod format;
mod global;
mod groups;
mod output;
mod perf;
mod produce;
mod server;
mod topics;

use global::Global;

/// Survives decoders asked to reserve absurd capacities by a request; see
/// `runnel_broker::ReservingAllocator`.
#[global_allocator]
static ALLOCATOR: runnel_broker::ReservingAllocator = runnel_broker::ReservingAllocator;

#[derive(Debug, Parser)]
#[command(
    name = "runnel",
    version,
    about = "Runnel: a Kafka-compatible streaming platform",
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a broker. With no arguments: a single node on 127.0.0.1:9092
    /// keeping its data in ./runnel-data.
    Server(server::ServerArgs),
    /// Writes a data directory's meta.properties (node id and cluster id)
    /// before its first start; never overwrites another identity.
    Format(format::Args),
    /// Creates, lists, describes, alters and deletes topics.
    #[command(subcommand)]
    Topics(topics::Command),
    /// Sends records read line by line from stdin or a file.
    Produce(produce::Args),
    /// Reads records and prints them.
    Consume(consume::Args),
    /// Lists, describes, resets and deletes consumer groups.
    #[command(subcommand)]
    Groups(groups::Command),
    /// Describes and alters topic and broker configs.
    #[command(subcommand)]
    Configs(configs::Command),
    /// Describes the cluster.
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// Measures produce or consume throughput and latency.
    #[command(subcommand)]
    Perf(perf::Command),
    /// Prints a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUNNEL_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(match cli.command {
                    Command::Server(_) => "info",
                    _ => "warn",
                })
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Server(args) => server::run(args),
        Command::Format(args) => format::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "runnel", &mut std::io::stdout());
            Ok(())
        }
        command => tool(cli.global, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("runnel: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a client-side subcommand on a small runtime.
fn tool(global: Global, command: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Topics(c) => topics::run(&global, c).await,
            Command::Produce(a) => produce::run(&global, a).await,
            Command::Consume(a) => consume::run(&global, a).await,
            Command::Groups(c) => groups::run(&global, c).await,
            Command::Configs(c) => configs::run(&global, c).await,
            Command::Cluster(c) => cluster::run(&global, c).await,
            Command::Perf(c) => perf::run(&global, c).await,
            Command::Server(_) | Command::Format(_) | Command::Completions { .. } => {
                unreachable!("handled in main")
            }
        }
    })
}
