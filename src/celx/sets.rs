//! Set operations on lists: Cerbos's `intersect`, `except`,
//! `hasIntersection` (`has_intersection`) and `isSubset` (`is_subset`), each
//! callable as `f(a, b)` or `a.f(b)`, and cel-go's sets extension
//! (`sets.contains`, `sets.equivalent`, `sets.intersects`). Elements are
//! compared with CEL equality, so `1`, `1u` and `1.0` are the same element.

use super::util::{contains_equal, list_items, owned_list, take_args, FnResult};
use cel::common::functions::Function;
use cel::common::types::{CelBool, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

/// Registers the set functions.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    let cerbos: [(&str, Function); 6] = [
        ("except", except),
        ("intersect", intersect),
        ("hasIntersection", has_intersection),
        ("has_intersection", has_intersection),
        ("isSubset", is_subset),
        ("is_subset", is_subset),
    ];
    for (name, f) in cerbos {
        env.add_overload(
            name,
            &format!("{name}_overload"),
            vec![LIST_TYPE, LIST_TYPE],
            f,
        )?;
        env.add_member_overload(
            name,
            &format!("{name}_member_overload"),
            LIST_TYPE,
            vec![LIST_TYPE],
            f,
        )?;
    }
    let ext: [(&str, Function); 3] = [
        ("sets.contains", sets_contains),
        ("sets.equivalent", sets_equivalent),
        ("sets.intersects", sets_intersects),
    ];
    for (name, f) in ext {
        env.add_overload(name, name, vec![LIST_TYPE, LIST_TYPE], f)?;
    }
    Ok(())
}

/// The elements of a list, borrowed.
type Items<'a, 'v> = Vec<&'a (dyn Val + 'v)>;

/// The two lists of a set function, borrowed.
fn two_lists<'a, 'v>(
    function: &str,
    args: &'a [CowVal<'_, 'v>; 2],
) -> Result<(Items<'a, 'v>, Items<'a, 'v>), ExecutionError> {
    Ok((
        list_items(function, args[0].as_ref())?,
        list_items(function, args[1].as_ref())?,
    ))
}

fn boolean<'b, 'v>(b: bool) -> FnResult<'b, 'v> {
    Ok(CowVal::Borrowed(if b {
        &CelBool::TRUE
    } else {
        &CelBool::FALSE
    }))
}

/// The elements of the shorter list (the first one on a tie) that the other
/// list has, in order, duplicates kept: what Cerbos's `intersect` returns.
fn intersect<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let args: [CowVal<'b, 'v>; 2] = take_args(args)?;
    let (mut a, mut b) = two_lists("intersect", &args)?;
    if a.len() > b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    let items = a
        .into_iter()
        .filter(|item| contains_equal(&b, *item))
        .map(|item| item.clone_as_boxed())
        .collect();
    Ok(owned_list(items))
}

/// The elements of the first list that the second does not have.
fn except<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let args: [CowVal<'b, 'v>; 2] = take_args(args)?;
    let (a, b) = two_lists("except", &args)?;
    let items = a
        .into_iter()
        .filter(|item| !contains_equal(&b, *item))
        .map(|item| item.clone_as_boxed())
        .collect();
    Ok(owned_list(items))
}

/// Whether the lists have an element in common.
fn has_intersection<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let args: [CowVal<'b, 'v>; 2] = take_args(args)?;
    let (a, b) = two_lists("hasIntersection", &args)?;
    boolean(a.iter().any(|item| contains_equal(&b, *item)))
}

/// Whether every element of the first list is in the second.
fn is_subset<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let args: [CowVal<'b, 'v>; 2] = take_args(args)?;
    let (a, b) = two_lists("isSubset", &args)?;
    boolean(a.iter().all(|item| contains_equal(&b, *item)))
}

/// `sets.contains(a, b)`: every element of `b` is in `a`.
fn sets_contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let args: [CowVal<'b, 'v>; 2] = take_args(args)?;
    let (a, b) = two_lists("sets.contains", &args)?;
    boolean(b.iter().all(|item| contains_equal(&a, *item)))
}

/// `sets.equivalent(a, b)`: each contains the other.
fn sets_equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let args: [CowVal<'b, 'v>; 2] = take_args(args)?;
    let (a, b) = two_lists("sets.equivalent", &args)?;
    boolean(
        b.iter().all(|item| contains_equal(&a, *item))
            && a.iter().all(|item| contains_equal(&b, *item)),
    )
}

/// `sets.intersects(a, b)`: an element of `a` is in `b`.
fn sets_intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let args: [CowVal<'b, 'v>; 2] = take_args(args)?;
    let (a, b) = two_lists("sets.intersects", &args)?;
    boolean(a.iter().any(|item| contains_equal(&b, *item)))
}
