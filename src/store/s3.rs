//! The S3 store: policies under a bucket prefix.
