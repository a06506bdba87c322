//! The offline commands of the `bootstrap` binary: `check` and `compile`.

pub mod err;
pub mod report;
pub mod verify;

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::api::Api;
use crate::compile::{CompileError, EngineSettings};
use crate::config::{Config, DiskConfig, SchemaEnforcement, StorageConfig, StorageDriver};
use crate::loader::{self, LoadError, PolicySet};
pub use err::CliError;
use report::{CompileReport, Problem};

/// Command line of the `bootstrap` binary. With no subcommand it runs the
/// Lambda runtime loop.
#[derive(Debug, Parser)]
#[command(
    name = "bootstrap",
    version,
    about = "Verdict: a Lambda-native policy decision point for Cerbos policies"
)]
pub struct Cli {
    /// What to do; omit to run as an AWS Lambda function.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Offline subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate a CheckResources request (or an /api/check body) and print the response.
    Check(CheckArgs),
    /// Validate a policy folder, report every error, then run its test suites (`*_test.yaml`).
    Compile(CompileArgs),
}

/// Arguments of `bootstrap check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Config file (default: VERDICT_CONFIG, ./config.yaml, then the built-in disk default).
    #[arg(long, conflicts_with = "policies")]
    pub config: Option<PathBuf>,
    /// Use this policy folder instead of a config file.
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// Read one request per line and write one response per line.
    #[arg(long)]
    pub ndjson: bool,
    /// The request JSON file; `-` or nothing reads standard input.
    pub request: Option<PathBuf>,
}

/// Output formats of `bootstrap compile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A readable report.
    Text,
    /// A JSON document (test results in Cerbos's `TestResults` shape).
    Json,
    /// JUnit XML, for CI test reports.
    Junit,
}

/// Arguments of `bootstrap compile`.
#[derive(Debug, clap::Args)]
pub struct CompileArgs {
    /// The policy folder.
    pub dir: PathBuf,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// Only validate the policies; do not run test suites.
    #[arg(long)]
    pub skip_tests: bool,
    /// Do not enforce JSON schemas while running tests (Cerbos's `--ignore-schemas`).
    #[arg(long)]
    pub ignore_schemas: bool,
}

/// Runs a subcommand and returns the process exit code.
pub fn run(command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Check(args) => runtime.block_on(check(args)),
        Command::Compile(args) => compile(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

fn config_for(args: &CheckArgs) -> Result<Config, CliError> {
    if let Some(dir) = &args.policies {
        return Ok(Config {
            storage: StorageConfig {
                driver: StorageDriver::Disk,
                disk: Some(DiskConfig {
                    directory: dir.clone(),
                    watch_for_changes: false,
                }),
                blob: None,
            },
            ..Config::default()
        });
    }
    Ok(Config::discover(args.config.as_deref())?.0)
}

async fn check(args: CheckArgs) -> Result<ExitCode, CliError> {
    let config = config_for(&args)?;
    let api = Api::new(&config)?;
    let (policies, _) = PolicySet::open(&config).await?;
    let index = policies.current();
    let input = read_input(args.request.as_deref())?;
    let mut stdout = std::io::stdout().lock();
    let mut failed = false;
    let mut answer = |body: &[u8], out: &mut dyn Write| -> Result<(), CliError> {
        let now = chrono::Utc::now().fixed_offset();
        let rendered = if is_check_resources(body) {
            api.check_resources(&index, body, now)
                .and_then(|c| c.check_resources_json())
        } else {
            api.check(&index, body, now).and_then(|c| c.check_json())
        };
        let bytes = rendered.unwrap_or_else(|err| {
            failed = true;
            err.body()
        });
        out.write_all(&bytes)?;
        out.write_all(b"\n")?;
        Ok(())
    };
    if args.ndjson {
        for line in input.lines() {
            let line = line?;
            if !line.trim().is_empty() {
                answer(line.as_bytes(), &mut stdout)?;
            }
        }
    } else {
        let mut body = Vec::new();
        { input }.read_to_end(&mut body)?;
        answer(&body, &mut stdout)?;
    }
    stdout.flush()?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A body with `resources` is a CheckResources request; anything else is
/// the single-resource form.
///
/// The top-level keys are read in order only until one decides (`resources`,
/// or `resource` / `actions` of the single form): a bad value further on
/// must get the error of the form it was written in, not an "unknown
/// field `resources`" from the other. Up to a deciding key the two forms
/// share their fields, so an error before it reads the same in either.
fn is_check_resources(body: &[u8]) -> bool {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
    use std::borrow::Cow;
    use std::cell::Cell;

    struct FormKeys<'f>(&'f Cell<bool>);

    impl<'de> Visitor<'de> for FormKeys<'_> {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                match &*key {
                    "resources" => {
                        self.0.set(true);
                        return Ok(());
                    }
                    "resource" | "actions" => return Ok(()),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }

    let check_resources = Cell::new(false);
    // Stopping at the deciding key leaves the object unfinished, which the
    // deserializer reports; only the key matters here.
    let _ = serde_json::Deserializer::from_slice(body).deserialize_map(FormKeys(&check_resources));
    check_resources.get()
}

fn read_input(path: Option<&Path>) -> Result<Box<dyn BufRead>, CliError> {
    match path {
        None => Ok(Box::new(std::io::BufReader::new(std::io::stdin()))),
        Some(p) if p == Path::new("-") => Ok(Box::new(std::io::BufReader::new(std::io::stdin()))),
        Some(p) => {
            let file = std::fs::File::open(p).map_err(|source| CliError::Read {
                path: p.to_path_buf(),
                source,
            })?;
            Ok(Box::new(std::io::BufReader::new(file)))
        }
    }
}

fn compile(args: &CompileArgs) -> Result<ExitCode, CliError> {
    let snapshot = crate::store::disk::load(&args.dir)?;
    // Tests run with schemas enforced, as `cerbos compile` does.
    let settings = EngineSettings {
        schema_enforcement: if args.ignore_schemas {
            SchemaEnforcement::None
        } else {
            SchemaEnforcement::Reject
        },
        ..EngineSettings::default()
    };
    let directory = args.dir.display().to_string();
    let report = match loader::build(&snapshot, settings.clone()) {
        Ok(index) => {
            let stats = index.stats();
            let test_results = if args.skip_tests {
                None
            } else {
                Some(verify::run(
                    &args.dir,
                    &snapshot,
                    Arc::new(index),
                    settings,
                )?)
            };
            CompileReport {
                directory,
                compiled: true,
                policies: Some(stats.policies),
                rules: Some(stats.rules),
                expressions: Some(stats.expressions),
                errors: Vec::new(),
                problems: Vec::new(),
                test_results,
            }
        }
        Err(LoadError::Store(err)) => return Err(err.into()),
        Err(err) => {
            let problems = problems(&err);
            CompileReport {
                directory,
                compiled: false,
                policies: None,
                rules: None,
                expressions: None,
                errors: problems.iter().map(|p| p.error.clone()).collect(),
                problems,
                test_results: None,
            }
        }
    };
    let rendered = match args.output {
        OutputFormat::Text => report::text(&report),
        OutputFormat::Json => report::json(&report) + "\n",
        OutputFormat::Junit => report::junit(&report),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(rendered.as_bytes())?;
    stdout.flush()?;
    Ok(if report.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Every error of a failed load, with its position when it has one.
fn problems(err: &LoadError) -> Vec<Problem> {
    let positioned = |file: &str, line: usize, column: usize, error: String| Problem {
        file: file.to_string(),
        line,
        column,
        error,
    };
    match err {
        LoadError::Parse(errors) => errors
            .iter()
            .map(|e| positioned(&e.file, e.line, e.column, e.to_string()))
            .collect(),
        LoadError::Compile(errors) => errors
            .0
            .iter()
            .map(|e| match compile_location(e) {
                Some((file, line, column)) => positioned(file, line, column, e.to_string()),
                None => positioned("", 0, 0, e.to_string()),
            })
            .collect(),
        LoadError::Store(e) => vec![positioned("", 0, 0, e.to_string())],
    }
}

fn compile_location(error: &CompileError) -> Option<(&str, usize, usize)> {
    let at = match error {
        CompileError::Policy(e) => return Some((&e.file, e.line, e.column)),
        CompileError::Cel { at, .. }
        | CompileError::Duplicate { at, .. }
        | CompileError::UnknownImport { at, .. }
        | CompileError::UnknownDerivedRole { at, .. }
        | CompileError::AmbiguousDerivedRole { at, .. }
        | CompileError::Redefined { at, .. }
        | CompileError::Undefined { at, .. }
        | CompileError::VariableCycle { at, .. }
        | CompileError::MissingAncestor { at, .. }
        | CompileError::Schema { at, .. }
        | CompileError::Pattern { at, .. } => at,
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    Some((&at.file, at.line, at.column))
}
