//! Errors raised while locating, reading or parsing `config.yaml`.

use std::path::PathBuf;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` or `VERDICT_CONFIG` could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path that was tried.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// A `${VAR}` reference names a variable that is unset and has no default.
    #[error("{path}: environment variable {name} is not set and has no default (write ${{{name}:default}})")]
    MissingEnv {
        /// The config file.
        path: String,
        /// The variable name.
        name: String,
    },
    /// A `${` without its closing brace.
    #[error("{path}:{line}: unterminated ${{...}} reference")]
    UnterminatedReference {
        /// The config file.
        path: String,
        /// 1-based line of the reference.
        line: usize,
    },
    /// The YAML is malformed or has a key or value the schema does not allow.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The config file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A value that parsed but makes no sense, e.g. a bad duration or bucket URL.
    #[error("{path}: {key}: {message}")]
    BadValue {
        /// The config file.
        path: String,
        /// Dotted key, e.g. `storage.blob.updatePollInterval`.
        key: String,
        /// What is wrong.
        message: String,
    },
}
