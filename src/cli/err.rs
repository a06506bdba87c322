//! Errors of the offline commands.

use std::path::PathBuf;

/// Why a command could not run.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The config could not be loaded.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The policy set could not be loaded.
    #[error(transparent)]
    Load(#[from] crate::loader::LoadError),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A JWT key set in the config is unusable.
    #[error(transparent)]
    KeySet(#[from] crate::api::KeySetError),
    /// The request file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading standard input or writing standard output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
