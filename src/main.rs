//! The `palaver` command.

use clap::Parser;
use palaver::config::{Cli, Command, DataCommand, HealthArgs, InitArgs, TestCommand};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            palaver::cli::init_logging(args.log_format, "info");
            if let Err(e) = palaver::cli::run(args).await {
                tracing::error!("{e:#}");
                eprintln!("error: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        }
        Command::Shell(args) => {
            palaver::cli::init_logging(args.log_format, "warn");
            if let Err(e) = palaver::cli::shell(args).await {
                eprintln!("error: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        }
        Command::Data(DataCommand::Validate {
            project,
            domain,
            data,
        }) => {
            palaver::cli::init_logging(palaver::config::LogFormat::Text, "warn");
            match palaver::cli::validate(&project, domain.as_deref(), data.as_deref()) {
                Ok(true) => {}
                Ok(false) => return std::process::ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        Command::Init(InitArgs { dir, force }) => match palaver::init::init_project(&dir, force) {
            Ok(files) => {
                for f in files {
                    println!("created {}", f.display());
                }
                println!(
                    "\nYour bot is ready. Serve it with:\n  palaver run {}\nand talk to it:\n  \
                     curl -X POST localhost:5005/webhooks/rest/webhook -d '{{\"sender\": \"me\", \"message\": \"/greet\"}}'",
                    dir.display()
                );
            }
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        Command::Test(TestCommand::Nlu(args)) => {
            palaver::cli::init_logging(palaver::config::LogFormat::Text, "info");
            if let Err(e) = palaver::cli::test_nlu(&args) {
                eprintln!("error: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        }
        Command::Health(HealthArgs { url }) => {
            if !palaver::cli::health_check(url).await {
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
