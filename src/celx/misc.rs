//! Odds and ends: Cerbos's `id()`, cel-go's `int(duration)`, and the list
//! functions of cel-go's optional library that cel 0.15 lacks (`first`,
//! `last`, `optional.unwrap`, `unwrapOpt`).

use super::util::{arg, fn_error, list_items, owned_list, take_args, FnResult};
use cel::common::types::{CelDuration, CelInt, CelOptional, DURATION_TYPE, DYN_TYPE, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

/// Registers the functions of this module.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload("id", "id_overload", vec![DYN_TYPE], identity)?;
    env.add_overload(
        "int",
        "duration_to_int64",
        vec![DURATION_TYPE],
        duration_nanos,
    )?;
    env.add_member_overload("first", "list_first", LIST_TYPE, vec![], first)?;
    env.add_member_overload("last", "list_last", LIST_TYPE, vec![], last)?;
    env.add_overload(
        "optional.unwrap",
        "optional_unwrap",
        vec![LIST_TYPE],
        unwrap_opt,
    )?;
    env.add_member_overload(
        "unwrapOpt",
        "optional_unwrapOpt",
        LIST_TYPE,
        vec![],
        unwrap_opt,
    )?;
    Ok(())
}

/// `id(x)` is `x`.
fn identity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [value] = take_args(args)?;
    Ok(value)
}

/// `int(duration)`: the duration in nanoseconds, as cel-go converts it.
fn duration_nanos<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let d = arg::<CelDuration>("int", &args, 0)?;
    let nanos = d
        .inner()
        .num_nanoseconds()
        .ok_or_else(|| fn_error("int", "duration out of range"))?;
    Ok(CowVal::owned(CelInt::from(nanos)))
}

/// `optional.of` the element picked from the list, or `optional.none()`.
fn pick<'b, 'v>(function: &str, args: Vec<CowVal<'b, 'v>>, last: bool) -> FnResult<'b, 'v> {
    let [list] = take_args(args)?;
    let items = list_items(function, list.as_ref())?;
    let picked = if last { items.last() } else { items.first() };
    Ok(CowVal::owned(match picked {
        Some(item) => CelOptional::of(item.clone_as_boxed()),
        None => CelOptional::none(),
    }))
}

fn first<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    pick("first", args, false)
}

fn last<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    pick("last", args, true)
}

/// The values of the optionals of a list that hold one.
fn unwrap_opt<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [list] = take_args(args)?;
    let mut values: Vec<Box<dyn Val + 'v>> = Vec::new();
    for item in list_items("optional.unwrap", list.as_ref())? {
        let Some(opt) = item.downcast_ref::<CelOptional>() else {
            return Err(ExecutionError::function_error(
                "optional.unwrap",
                format!(
                    "expected a list of optionals, found {}",
                    item.get_type().name()
                ),
            ));
        };
        if let Some(v) = opt.inner() {
            values.push(v.clone_as_boxed());
        }
    }
    Ok(owned_list(values))
}
