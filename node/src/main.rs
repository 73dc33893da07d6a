//! The `kith` binary: replicas (`init`, `node`, `cluster`), users (`id`,
//! `register`, `room`, `send`, `dm`, `history`, `tail`, `inbox`,
//! `presence`, `chat`, `file`, `contacts`, `block`, `reads`) and the one-command local cluster (`dev`).

mod allocator;
mod cli;
mod contact_commands;
mod dev;
mod file_commands;
mod file_upload;
mod live_commands;
mod log_budget;
mod render;
mod replica_commands;
mod room_commands;
mod session;
mod settings;
mod transfer_progress;
mod user_commands;

use clap::Parser;
use cli::{Cli, Command, LogFormat};
use std::process::ExitCode;

fn main() -> ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let env = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kith_io_tokio=info"));
    let budget = log_budget::LogBudget::default();
    let lines = env.and(budget.clone());
    // Colours only on a terminal: replica logs usually go to files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    let layer = match format {
        LogFormat::Json => layer.json().boxed(),
        LogFormat::Text => layer.boxed(),
    };
    tracing_subscriber::registry().with(layer.with_filter(lines)).init();
    budget.summarize_in_background();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.clone() {
        Command::Dev(args) => dev::run(&cli, args).await,
        Command::Init(args) => replica_commands::init(&cli, &args),
        Command::Node(args) => replica_commands::node(args, cli.mdns).await,
        Command::Cluster(c) => replica_commands::cluster(&cli, c).await,
        Command::Id(c) => user_commands::id(&cli, c),
        Command::File(c) => file_commands::run(&cli, c).await,
        Command::Chat { room } => live_commands::chat(&cli, room).await,
        Command::Tail { room, from } => live_commands::tail(&cli, &room, from).await,
        other => user_commands::run(&cli, other).await,
    }
}
