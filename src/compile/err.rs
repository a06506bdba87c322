//! Errors found while compiling a policy set into a rule index.

use std::fmt;

use crate::policy::PolicyError;

/// Where in the policy files an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Store-relative file.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}", self.file),
            (line, 0) => write!(f, "{}:{line}", self.file),
            (line, column) => write!(f, "{}:{line}:{column}", self.file),
        }
    }
}

impl From<&PolicyError> for Location {
    fn from(e: &PolicyError) -> Self {
        Location {
            file: e.file.clone(),
            line: e.line,
            column: e.column,
        }
    }
}

/// One reason a policy set does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// A file did not parse or failed a per-file check.
    #[error("{0}")]
    Policy(PolicyError),
    /// A CEL expression does not parse.
    #[error("{at}: invalid CEL expression `{expr}`: {message}")]
    Cel {
        /// Where.
        at: Location,
        /// The expression.
        expr: String,
        /// The parser's message.
        message: String,
    },
    /// Two policies claim the same identity.
    #[error("{at}: {what} is also defined in {other}")]
    Duplicate {
        /// Where the second definition is.
        at: Location,
        /// What is duplicated.
        what: String,
        /// Where the first definition is.
        other: String,
    },
    /// An import names a set that does not exist.
    #[error("{at}: {kind} {name:?} is imported but not defined by any policy")]
    UnknownImport {
        /// Where.
        at: Location,
        /// `derived roles`, `variables` or `constants`.
        kind: &'static str,
        /// The missing name.
        name: String,
    },
    /// A rule names a derived role that no imported set defines.
    #[error(
        "{at}: derived role {name:?} is not defined in the imported derived roles ({imports})"
    )]
    UnknownDerivedRole {
        /// Where.
        at: Location,
        /// The role.
        name: String,
        /// The imported sets, comma-separated.
        imports: String,
    },
    /// Two imported sets define the same derived role.
    #[error("{at}: derived role {name:?} is defined in more than one imported set ({sets})")]
    AmbiguousDerivedRole {
        /// Where.
        at: Location,
        /// The role.
        name: String,
        /// The sets.
        sets: String,
    },
    /// A variable or constant is defined twice for one policy.
    #[error("{at}: {kind} {name:?} is defined more than once ({sources})")]
    Redefined {
        /// Where.
        at: Location,
        /// `variable` or `constant`.
        kind: &'static str,
        /// The name.
        name: String,
        /// Where it is defined.
        sources: String,
    },
    /// An expression refers to a variable or constant that does not exist.
    #[error("{at}: undefined {kind} {name:?} in `{expr}`")]
    Undefined {
        /// Where.
        at: Location,
        /// `variable` or `constant`.
        kind: &'static str,
        /// The missing name.
        name: String,
        /// The expression.
        expr: String,
    },
    /// Variables that refer to each other in a loop.
    #[error("{at}: variables refer to each other in a cycle: {cycle}")]
    VariableCycle {
        /// Where.
        at: Location,
        /// The names in the cycle.
        cycle: String,
    },
    /// A scoped policy lacks a policy in one of its ancestor scopes.
    #[error("{at}: {what} has no policy in its parent scope {missing:?}: every ancestor scope needs one")]
    MissingAncestor {
        /// Where.
        at: Location,
        /// The scoped policy.
        what: String,
        /// The missing scope (`""` is the root).
        missing: String,
    },
    /// A schema reference that cannot be resolved or compiled.
    #[error("{at}: schema {reference:?}: {message}")]
    Schema {
        /// Where.
        at: Location,
        /// The reference.
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// An action, resource or role pattern that is not a valid glob.
    #[error("{at}: {message}")]
    Pattern {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
    },
    /// A global value from config that cannot be used in CEL.
    #[error("engine.globals.{name}: {message}")]
    Global {
        /// The global.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// All errors of a policy set that did not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CompileErrors(pub Vec<CompileError>);

impl fmt::Display for CompileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the policy set does not compile ({} error{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}
