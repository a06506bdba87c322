//! `bootstrap`: the Lambda function, and with a subcommand the offline CLI.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match verdict::cli::Cli::parse().command {
        Some(command) => verdict::cli::run(command),
        None => verdict::lambda::run(),
    }
}
