//! The CEL layer of Verdict: the environment Cerbos-format conditions are
//! compiled and evaluated in, and conversions between JSON and CEL values.
//!
//! It provides what Cerbos 0.55's CEL environment offers on top of what the
//! `cel` crate (0.15) has built in:
//!
//! - Cerbos's library: `hierarchy(...)` and its methods, `inIPAddrRange`,
//!   `intersect`, `except`, `hasIntersection`/`has_intersection`,
//!   `isSubset`/`is_subset`, `now()`, `timeSince()`, `id()` and the SPIFFE
//!   functions (`spiffeID`, `spiffeTrustDomain`, `spiffeMatch*`);
//! - cel-go extensions the crate lacks: `cel.bind`, the two-variable
//!   comprehensions (`all`, `exists`, `existsOne`, `transformList`,
//!   `transformMap`, `transformMapEntry`), `sets.*`, `regex.*`, the network
//!   functions (`ip`, `cidr`, `isIP`, ...), `json.encode`, and the optional
//!   library's `first`/`last`/`optional.unwrap`;
//! - the crate's own strings, encoders, math and lists extensions.
//!
//! # Evaluating
//!
//! Compile once with [`compile`], then evaluate with a context on
//! [`environment`] whose variable resolver provides `request`, `P`, `R`,
//! `V`/`variables`, `C`/`constants`, `G`/`globals`, `runtime` and
//! [`NOW_VARIABLE`]: `now()` and `timeSince()` read the evaluation time from
//! it, so that every expression of a request sees the same instant.
//!
//! ```ignore
//! let program = celx::compile("now() > timestamp(R.attr.created)")?;
//! let mut ctx = cel::Context::with_env(celx::environment());
//! ctx.set_variable_resolver(&resolver);
//! let result = program.execute(&ctx);
//! ```

pub mod err;

mod env;
mod fastparse;

pub use fastparse::visit;
mod hierarchy;
/// JSON to `cel` values and back; the engine's direct form renders its
/// scalars with the same helpers.
pub(crate) mod json;
mod lookup;
mod macros;
pub mod message;
mod misc;
mod network;
mod regexfn;
mod sets;
mod spiffe;
mod util;

#[cfg(test)]
mod tests;

use cel::common::types::CelTimestamp;
use cel::common::value::Val;
use std::sync::{Arc, LazyLock};

/// Name of the activation variable that carries the request's evaluation
/// time (a CEL timestamp value, see [`timestamp_val`]). `now()` expands to
/// it, and `ts.timeSince()` to its difference with `ts`. Names starting with
/// `@` cannot be written in expressions, so it never collides with a user's.
pub const NOW_VARIABLE: &str = "@now";

/// The environment, built on first use, or the standard library with the
/// reason the build failed (which the tests of this module rule out).
static ENVIRONMENT: LazyLock<(Arc<cel::Env>, Option<cel::DeclarationError>)> =
    LazyLock::new(|| match env::build() {
        Ok(env) => (Arc::new(env), None),
        Err(e) => (Arc::new(cel::Env::stdlib()), Some(e)),
    });

/// The Cerbos CEL environment, built once and shared.
pub fn environment() -> Arc<cel::Env> {
    Arc::clone(&ENVIRONMENT.0)
}

/// Why the Cerbos environment could not be built, if it could not: then
/// [`environment`] is the plain standard library. Never the case unless a
/// registration of this module conflicts with one of the `cel` crate.
pub fn environment_error() -> Option<&'static cel::DeclarationError> {
    ENVIRONMENT.1.as_ref()
}

/// A compiled CEL expression: its syntax tree, macros expanded.
#[derive(Debug, Clone)]
pub struct Program {
    expression: cel::parser::Expression,
}

impl Program {
    /// The expanded syntax tree.
    pub fn expression(&self) -> &cel::parser::Expression {
        &self.expression
    }

    /// Evaluates the expression in `context`.
    pub fn execute(&self, context: &cel::Context<'_, '_>) -> cel::ResolveResult {
        cel::Value::resolve(&self.expression, context)
    }
}

/// Compiles one CEL expression with the environment's parser and macros.
///
/// cel's Pratt parser is some 30 times faster than its ANTLR one, which
/// matters at cold start, but it only expands the standard macros. So an
/// expression is parsed with it first and kept when it needs nothing else:
/// `now()` and `timeSince()` are rewritten here, and anything calling another
/// of the environment's macros (two-variable comprehensions, `cel.bind`,
/// `sortBy`, `math.greatest`, ...) is parsed again with the full parser, as
/// is an expression the fast parser rejects, so errors read the same.
/// Either way, selections on the activation's variables become index
/// lookups (see `lookup.rs`), which `cel` evaluates with less work.
///
/// # Errors
///
/// [`err::CelxError::Parse`] when the expression does not parse, or a macro
/// rejects it.
pub fn compile(source: &str) -> Result<Program, err::CelxError> {
    let fast = cel::parser::PrattParser::new()
        .enable_optional_syntax(true)
        .parse(source);
    let mut expression = match fast {
        Ok(mut expression) if !fastparse::needs_environment_macros(&expression) => {
            fastparse::expand_time_macros(&mut expression);
            expression
        }
        _ => ENVIRONMENT
            .0
            .compile(source)
            .map(|program| program.expression().clone())
            .map_err(|e| err::CelxError::Parse {
                expression: source.to_owned(),
                message: e.to_string(),
            })?,
    };
    lookup::index_activation_selects(&mut expression);
    Ok(Program { expression })
}

/// Converts JSON into a CEL value that borrows the JSON's strings rather than
/// copying them.
///
/// Numbers become `double`s, as they are in Cerbos (where attributes are
/// `google.protobuf.Value`s); objects become maps with string keys.
pub fn json_to_val<'a>(value: &'a serde_json::Value) -> Box<dyn Val + 'a> {
    json::to_val(value)
}

/// Converts JSON into a CEL value that owns its data, for values that must
/// outlive the JSON (constants and globals compiled once). Same mapping as
/// [`json_to_val`].
pub fn json_to_static_val(value: &serde_json::Value) -> Box<dyn Val + 'static> {
    json::to_static_val(value)
}

/// Converts a CEL value to JSON the way Cerbos renders outputs
/// (cel-go's conversion to `google.protobuf.Value`):
///
/// - `null`, `bool` and `string` as themselves;
/// - `double` as a number (whole numbers without a fraction), `int` and
///   `uint` as numbers when a double holds them exactly (|n| < 2^53), as
///   decimal strings otherwise;
/// - `bytes` as base64 (standard alphabet, padded);
/// - timestamps as RFC 3339 strings in UTC (`"2021-04-22T15:05:20.021Z"`),
///   durations as seconds (`"86400s"`, `"1.500s"`);
/// - lists as arrays, maps as objects.
///
/// # Errors
///
/// [`err::CelxError::Convert`] for a value with no JSON form: a non-finite
/// double, a map with a key that is not a string (cel-go fails the same way),
/// a type value, an optional, or one of the library's own types (hierarchy,
/// IP address, SPIFFE ID, ...).
pub fn val_to_json(value: &dyn Val) -> Result<serde_json::Value, err::CelxError> {
    json::from_val(value)
}

/// A timestamp value for [`NOW_VARIABLE`].
pub fn timestamp_val(t: chrono::DateTime<chrono::FixedOffset>) -> Box<dyn Val + 'static> {
    Box::new(CelTimestamp::from(t))
}
