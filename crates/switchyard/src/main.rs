//! The `switchyard` binary: `up`, `platform`, `gateway` and admin commands.
//!
//! This is the only crate that reads environment variables and config files; it turns them
//! into the typed configuration the libraries take.

mod cmd;
mod lock;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "switchyard",
    version,
    about = "Self-hosted API management platform and gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Everything on one machine: the platform with SQLite, one local gateway node.
    Up(cmd::up::UpArgs),
    /// The control plane alone.
    Platform(cmd::platform::PlatformArgs),
    /// One gateway node.
    Gateway(cmd::gateway::GatewayArgs),
    /// Admin commands against the REST API.
    #[command(flatten)]
    Admin(cmd::admin::AdminCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => cmd::up::run(args),
        Command::Platform(args) => cmd::platform::run(args),
        Command::Gateway(args) => cmd::gateway::run(args),
        Command::Admin(command) => cmd::admin::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// `--help` explains every command and option (hidden test-only flags aside).
    #[test]
    fn every_command_and_option_has_help() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let generated = matches!(arg.get_id().as_str(), "help" | "version");
                if !arg.is_hide_set() && !generated && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "switchyard", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
