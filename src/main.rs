//! `bootstrap`: the Lambda function, and with a subcommand the offline CLI.

use std::process::ExitCode;

use clap::Parser;

// glibc's malloc spent a fifth of a 1,000-policy cold start in malloc/free
// (YAML events, small strings); mimalloc measured faster (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    verdict::loader::set_memory_release(return_freed_pages);
    match verdict::cli::Cli::parse().command {
        Some(command) => verdict::cli::run(command),
        None => verdict::lambda::run(),
    }
}

/// Makes mimalloc return the pages a policy load has just freed, instead of
/// after its purge delay: 3.4–3.5 MB less peak RSS for 1,000 policies, for
/// about 3 ms of cold start (BENCHMARKS.md).
fn return_freed_pages() {
    // SAFETY: mi_collect only walks mimalloc's own heaps; any thread may call
    // it at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
