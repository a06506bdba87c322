//! Why a policy set could not be loaded.

use crate::compile::CompileErrors;
use crate::policy::PolicyError;
use crate::store::StoreError;

/// A failed load: the store could not be read or the set does not compile.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// One or more files do not parse.
    #[error("{} policy file error(s):{}", .0.len(), list(.0))]
    Parse(Vec<PolicyError>),
    /// The set parses but does not compile.
    #[error(transparent)]
    Compile(#[from] CompileErrors),
}

fn list(errors: &[PolicyError]) -> String {
    errors.iter().map(|e| format!("\n  {e}")).collect()
}

impl LoadError {
    /// Every individual error, one line each, for logs.
    pub fn lines(&self) -> Vec<String> {
        match self {
            LoadError::Store(e) => vec![e.to_string()],
            LoadError::Parse(errors) => errors.iter().map(ToString::to_string).collect(),
            LoadError::Compile(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }
}
