//! Errors raised while reading policy files from a store.

use std::path::PathBuf;

/// Why the policy files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The policy directory does not exist or is not a directory.
    #[error("policy directory {path} does not exist or is not a directory")]
    MissingDirectory {
        /// The directory that was configured.
        path: PathBuf,
    },
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// A path inside the store is not valid UTF-8, so it cannot be named in policies or errors.
    #[error("policy path {path} is not valid UTF-8")]
    NonUtf8Path {
        /// The path, lossily decoded.
        path: PathBuf,
    },
    /// The store holds no policy files and an empty set was not allowed.
    #[error("no policy files found in {location}")]
    Empty {
        /// Where we looked.
        location: String,
    },
    /// An S3 request failed.
    #[error("s3://{bucket}/{prefix}: {message}")]
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix (or object key) involved.
        prefix: String,
        /// What failed and why.
        message: String,
    },
}
