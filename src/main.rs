//! `bootstrap`: the Lambda function, and with a subcommand the offline CLI.

use std::process::ExitCode;

use clap::Parser;

// glibc's malloc spent a fifth of a 1,000-policy cold start in malloc/free
// (YAML events, small strings); mimalloc measured faster (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match verdict::cli::Cli::parse().command {
        Some(command) => verdict::cli::run(command),
        None => verdict::lambda::run(),
    }
}
