//! Assembles the Cerbos CEL environment.

use cel::{extensions, DeclarationError, Env};

/// The environment Cerbos 0.55 evaluates conditions in: the standard library
/// (with optional values), cel-go's strings, encoders, math, lists, sets,
/// regex, network, bindings and two-variable comprehension extensions, and
/// Cerbos's own library.
pub(crate) fn build() -> Result<Env, DeclarationError> {
    let mut env = Env::stdlib();
    // cel-go keeps the last of repeated map literal keys.
    env.set_error_on_duplicate_map_keys(false);
    env.add_extension(extensions::strings)?;
    env.add_extension(extensions::encoders)?;
    env.add_extension(extensions::math)?;
    env.add_extension(extensions::lists)?;
    env.add_extension(super::macros::register)?;
    env.add_extension(super::sets::register)?;
    env.add_extension(super::network::register)?;
    env.add_extension(super::regexfn::register)?;
    env.add_extension(super::json::register)?;
    env.add_extension(super::hierarchy::register)?;
    env.add_extension(super::spiffe::register)?;
    env.add_extension(super::misc::register)?;
    Ok(env)
}
