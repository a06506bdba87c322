//! Policy files: YAML (or JSON) bytes to typed, checked policies.
//!
//! Every problem is reported as `file:line:col: message`. Syntax errors and
//! unknown fields carry the position the YAML parser reports; errors found
//! after parsing (a bad name, a missing effect) are placed at the first line
//! of the document that shows the offending text.

pub mod err;
pub mod model;
mod parse;
pub mod pool;
pub mod source;
pub mod testsuite;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use err::{PolicyError, PolicyErrors};
pub use parse::{parse_file, parse_set};
pub use pool::ParsePool;
pub use source::SourceText;

/// A checked policy document.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The file it came from, with its text for locating later errors.
    pub source: Arc<SourceText>,
    /// Byte offset of the document within the file (multi-document files).
    pub offset: usize,
    /// Disabled policies are checked but never evaluated.
    pub disabled: bool,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// Deprecated top-level `variables`, merged into the local ones.
    pub top_level_variables: BTreeMap<String, String>,
    /// The policy itself.
    pub kind: PolicyKind,
}

/// The six kinds of Cerbos policy.
#[derive(Debug, Clone)]
pub enum PolicyKind {
    /// `resourcePolicy`.
    Resource(model::ResourcePolicy),
    /// `principalPolicy`.
    Principal(model::PrincipalPolicy),
    /// `derivedRoles`.
    DerivedRoles(model::DerivedRoles),
    /// `exportVariables`.
    ExportVariables(model::ExportVariables),
    /// `exportConstants`.
    ExportConstants(model::ExportConstants),
    /// `rolePolicy`.
    Role(model::RolePolicy),
}

impl Policy {
    /// The store-relative file name.
    pub fn file(&self) -> &str {
        &self.source.name
    }

    /// An error about this policy, placed at the first occurrence of `needle`
    /// in the document (or at the document start when absent).
    pub fn error_at(&self, needle: &str, message: impl Into<String>) -> PolicyError {
        let (line, column) = self
            .source
            .locate(self.offset, needle)
            .unwrap_or_else(|| self.source.position(self.offset));
        PolicyError {
            file: self.source.name.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// A short description for logs and errors, e.g. `resource policy leave_request (default)`.
    pub fn describe(&self) -> String {
        match &self.kind {
            PolicyKind::Resource(p) => with_scope(
                format!("resource policy {} (version {})", p.resource, p.version),
                &p.scope,
            ),
            PolicyKind::Principal(p) => with_scope(
                format!("principal policy {} (version {})", p.principal, p.version),
                &p.scope,
            ),
            PolicyKind::DerivedRoles(p) => format!("derived roles {}", p.name),
            PolicyKind::ExportVariables(p) => format!("exported variables {}", p.name),
            PolicyKind::ExportConstants(p) => format!("exported constants {}", p.name),
            PolicyKind::Role(p) => with_scope(format!("role policy {}", p.role), &p.scope),
        }
    }
}

fn with_scope(text: String, scope: &str) -> String {
    if scope.is_empty() {
        text
    } else {
        format!("{text} in scope {scope}")
    }
}
