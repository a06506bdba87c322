//! Errors of the CEL layer.

use thiserror::Error;

/// What can go wrong while compiling an expression or converting a value.
///
/// Evaluation errors are not here: evaluating a program yields a
/// [`cel::ExecutionError`], which the engine treats as the expression being
/// false (or reports, depending on where the expression is used).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CelxError {
    /// The expression does not parse, or one of its macros rejected it (for
    /// example `cel.bind(a.b, 1, 2)` or `m.all(k, k, true)`).
    #[error("failed to compile CEL expression `{expression}`: {message}")]
    Parse {
        /// The source text of the expression.
        expression: String,
        /// The parser's description of the problem(s).
        message: String,
    },
    /// A CEL value has no JSON (`google.protobuf.Value`) representation.
    #[error("cannot convert a CEL value of type `{type_name}` to JSON: {reason}")]
    Convert {
        /// The CEL type name of the offending value.
        type_name: String,
        /// Why it cannot be converted.
        reason: String,
    },
}

impl CelxError {
    /// A conversion error for a value of type `type_name`.
    pub(crate) fn convert(type_name: &str, reason: impl Into<String>) -> Self {
        CelxError::Convert {
            type_name: type_name.to_owned(),
            reason: reason.into(),
        }
    }
}
