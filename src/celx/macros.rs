//! Parse-time macros: `now()`, `timeSince()`, `cel.bind()` and cel-go's
//! two-variable comprehensions, plus the hidden helper functions their
//! expansions call.
//!
//! Every name this module introduces into an expansion starts with `@`, which
//! the CEL grammar does not allow in identifiers or function names: a user's
//! expression can neither call the helpers nor collide with the variables.
//!
//! # Two-variable comprehensions
//!
//! The interpreter of cel 0.15 only binds `iter_var` (it ignores
//! `ComprehensionExpr::iter_var2`), so `target.all(k, v, p)` is rewritten to
//! a single-variable comprehension over `@entries(target)`, the list of
//! `[key, value]` pairs of a map (or `[index, element]` pairs of a list), in
//! which the two names are bound with `cel.bind`-style comprehensions:
//!
//! ```text
//! @entries(target).all(@it, cel.bind(k, @it[0], cel.bind(v, @it[1], p)))
//! ```
//!
//! `transformMap` collects `[key, value]` pairs and turns them into a map with
//! `@pairsToMap`; `transformMapEntry` collects maps and merges them with
//! `@mergeMaps`, which fails on a repeated key as cel-go's `cel.@mapInsert`
//! does. Map literals in the bodies are built with `@mapOf`, which accepts
//! whole-number double keys.

use super::util::{
    arg, bind, bool_lit, call, fn_error, ident, int_lit, list, no_overload, owned_list,
    simple_name, take_args, FnResult,
};
use super::NOW_VARIABLE;
use cel::common::ast::{operators, ComprehensionExpr, EntryExpr, Expr, IdedExpr};
use cel::common::types::{
    CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelTimestamp, Kind, LIST_TYPE,
    MAP_TYPE, TIMESTAMP_TYPE,
};
use cel::common::value::{CowVal, Val};
use cel::parser::{Macro, MacroExprHelper};
use cel::{DeclarationError, Env, ExecutionError, ParseError};
use std::collections::HashMap;

/// The loop variable of the rewritten two-variable comprehensions.
const ENTRY_VAR: &str = "@it";
/// The accumulator of the rewritten comprehensions, as the standard macros
/// name theirs.
const ACCU_VAR: &str = "@result";
/// `[key, value]` pairs of a map or list.
const ENTRIES_FN: &str = "@entries";
/// A map from a list of `[key, value]` pairs.
const PAIRS_TO_MAP_FN: &str = "@pairsToMap";
/// A map from a list of maps, failing on repeated keys.
const MERGE_MAPS_FN: &str = "@mergeMaps";
/// A map from a flat `[k1, v1, k2, v2, ...]` list: what map literals in the
/// bodies of the two-variable comprehensions are rewritten to, so that a key
/// computed from a JSON number (a double holding a whole number, as in
/// `list.transformMapEntry(i, v, {v: i})`) is accepted, as cel-go accepts it.
const MAP_OF_FN: &str = "@mapOf";
/// `now - ts`, only for timestamps.
const TIME_SINCE_FN: &str = "@timeSince";

/// Registers the macros and their helper functions on `env`.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_macro(Macro::global("now", 0, |helper, _target, _args| {
        Ok(Some(ident(helper, NOW_VARIABLE)))
    }))?;
    env.add_macro(Macro::receiver("timeSince", 0, |helper, target, _args| {
        let Some(ts) = target.take() else {
            return Ok(None);
        };
        Ok(Some(time_since(helper, ts)))
    }))?;
    env.add_macro(Macro::global("timeSince", 1, |helper, _target, args| {
        let Some(ts) = args.pop() else {
            return Ok(None);
        };
        Ok(Some(time_since(helper, ts)))
    }))?;
    env.add_macro(Macro::receiver("bind", 3, cel_bind))?;

    env.add_macro(Macro::receiver("all", 3, |h, t, a| {
        quantifier(h, t, a, Quantifier::All)
    }))?;
    env.add_macro(Macro::receiver("exists", 3, |h, t, a| {
        quantifier(h, t, a, Quantifier::Exists)
    }))?;
    env.add_macro(Macro::receiver("existsOne", 3, |h, t, a| {
        quantifier(h, t, a, Quantifier::ExistsOne)
    }))?;
    env.add_macro(Macro::receiver("exists_one", 3, |h, t, a| {
        quantifier(h, t, a, Quantifier::ExistsOne)
    }))?;
    for arity in [3, 4] {
        env.add_macro(Macro::receiver("transformList", arity, |h, t, a| {
            transform(h, t, a, Transform::List)
        }))?;
        env.add_macro(Macro::receiver("transformMap", arity, |h, t, a| {
            transform(h, t, a, Transform::Map)
        }))?;
        env.add_macro(Macro::receiver("transformMapEntry", arity, |h, t, a| {
            transform(h, t, a, Transform::MapEntry)
        }))?;
    }

    env.add_overload(
        TIME_SINCE_FN,
        "@timeSince_timestamp_timestamp",
        vec![TIMESTAMP_TYPE, TIMESTAMP_TYPE],
        time_since_fn,
    )?;
    env.add_overload(ENTRIES_FN, "@entries_list", vec![LIST_TYPE], entries)?;
    env.add_overload(ENTRIES_FN, "@entries_map", vec![MAP_TYPE], entries)?;
    env.add_overload(
        PAIRS_TO_MAP_FN,
        "@pairsToMap_list",
        vec![LIST_TYPE],
        pairs_to_map,
    )?;
    env.add_overload(
        MERGE_MAPS_FN,
        "@mergeMaps_list",
        vec![LIST_TYPE],
        merge_maps,
    )?;
    env.add_overload(MAP_OF_FN, "@mapOf_list", vec![LIST_TYPE], map_of)?;
    Ok(())
}

/// `@timeSince(@now, ts)`.
fn time_since(helper: &mut MacroExprHelper<'_>, ts: IdedExpr) -> IdedExpr {
    let now = ident(helper, NOW_VARIABLE);
    call(helper, TIME_SINCE_FN, vec![now, ts])
}

/// `cel.bind(name, init, body)`; any other `x.bind(a, b, c)` is left alone.
fn cel_bind(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Result<Option<IdedExpr>, ParseError> {
    if !matches!(target.as_ref().map(|t| &t.expr), Some(Expr::Ident(name)) if name == "cel") {
        return Ok(None);
    }
    let [var, init, body] = take3(helper, args)?;
    let name = simple_name(helper, &var, "cel.bind() variable name")?;
    Ok(Some(bind(helper, &name, init, body)))
}

/// The three arguments of a macro matched for exactly three.
fn take3(
    helper: &mut MacroExprHelper<'_>,
    args: &mut Vec<IdedExpr>,
) -> Result<[IdedExpr; 3], ParseError> {
    <[IdedExpr; 3]>::try_from(std::mem::take(args))
        .map_err(|_| helper.new_error(0, "expected three arguments"))
}

#[derive(Clone, Copy)]
enum Quantifier {
    All,
    Exists,
    ExistsOne,
}

#[derive(Clone, Copy, PartialEq)]
enum Transform {
    List,
    Map,
    MapEntry,
}

/// The two iteration variables, checked as cel-go checks them.
fn iter_vars(
    helper: &mut MacroExprHelper<'_>,
    first: &IdedExpr,
    second: &IdedExpr,
) -> Result<(String, String), ParseError> {
    let k = simple_name(helper, first, "iteration variable")?;
    let v = simple_name(helper, second, "iteration variable")?;
    if k == v {
        return Err(helper.new_error(second.id, format!("duplicate variable name: {v}")));
    }
    Ok((k, v))
}

/// `body` with `k` and `v` bound to the key and value of the current entry.
fn with_entry_vars(helper: &mut MacroExprHelper<'_>, k: &str, v: &str, body: IdedExpr) -> IdedExpr {
    let entry = ident(helper, ENTRY_VAR);
    let one = int_lit(helper, 1);
    let value = call(helper, operators::INDEX, vec![entry, one]);
    let inner = bind(helper, v, value, body);
    let entry = ident(helper, ENTRY_VAR);
    let zero = int_lit(helper, 0);
    let key = call(helper, operators::INDEX, vec![entry, zero]);
    bind(helper, k, key, inner)
}

/// A comprehension over `@entries(target)`.
#[allow(clippy::too_many_arguments)]
fn entries_comprehension(
    helper: &mut MacroExprHelper<'_>,
    target: IdedExpr,
    accu_init: IdedExpr,
    loop_cond: IdedExpr,
    loop_step: IdedExpr,
    result: IdedExpr,
) -> IdedExpr {
    let iter_range = call(helper, ENTRIES_FN, vec![target]);
    helper.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range,
        iter_var: ENTRY_VAR.to_owned(),
        iter_var2: None,
        accu_var: ACCU_VAR.to_owned(),
        accu_init,
        loop_cond,
        loop_step,
        result,
    })))
}

/// `all`, `exists` and `existsOne` with two variables.
fn quantifier(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
    kind: Quantifier,
) -> Result<Option<IdedExpr>, ParseError> {
    let Some(range) = target.take() else {
        return Ok(None);
    };
    let [first, second, mut predicate] = take3(helper, args)?;
    let (k, v) = iter_vars(helper, &first, &second)?;
    rewrite_map_literals(helper, &mut predicate);
    let predicate = with_entry_vars(helper, &k, &v, predicate);
    let expansion = match kind {
        Quantifier::All => {
            let init = bool_lit(helper, true);
            let accu = ident(helper, ACCU_VAR);
            let cond = call(helper, operators::NOT_STRICTLY_FALSE, vec![accu]);
            let accu = ident(helper, ACCU_VAR);
            let step = call(helper, operators::LOGICAL_AND, vec![accu, predicate]);
            let result = ident(helper, ACCU_VAR);
            entries_comprehension(helper, range, init, cond, step, result)
        }
        Quantifier::Exists => {
            let init = bool_lit(helper, false);
            let accu = ident(helper, ACCU_VAR);
            let not = call(helper, operators::LOGICAL_NOT, vec![accu]);
            let cond = call(helper, operators::NOT_STRICTLY_FALSE, vec![not]);
            let accu = ident(helper, ACCU_VAR);
            let step = call(helper, operators::LOGICAL_OR, vec![accu, predicate]);
            let result = ident(helper, ACCU_VAR);
            entries_comprehension(helper, range, init, cond, step, result)
        }
        Quantifier::ExistsOne => {
            let init = int_lit(helper, 0);
            let cond = bool_lit(helper, true);
            let accu = ident(helper, ACCU_VAR);
            let one = int_lit(helper, 1);
            let incremented = call(helper, operators::ADD, vec![accu, one]);
            let accu = ident(helper, ACCU_VAR);
            let step = call(
                helper,
                operators::CONDITIONAL,
                vec![predicate, incremented, accu],
            );
            let accu = ident(helper, ACCU_VAR);
            let one = int_lit(helper, 1);
            let result = call(helper, operators::EQUALS, vec![accu, one]);
            entries_comprehension(helper, range, init, cond, step, result)
        }
    };
    Ok(Some(expansion))
}

/// `transformList`, `transformMap` and `transformMapEntry`, with or without
/// a filter.
fn transform(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
    kind: Transform,
) -> Result<Option<IdedExpr>, ParseError> {
    let Some(range) = target.take() else {
        return Ok(None);
    };
    let mut parts = std::mem::take(args).into_iter();
    let (Some(first), Some(second)) = (parts.next(), parts.next()) else {
        return Err(helper.new_error(range.id, "expected three or four arguments"));
    };
    let rest: Vec<IdedExpr> = parts.collect();
    let (filter, mut value) = match <[IdedExpr; 2]>::try_from(rest) {
        Ok([filter, value]) => (Some(filter), value),
        Err(mut rest) => match rest.pop() {
            Some(value) if rest.is_empty() => (None, value),
            _ => return Err(helper.new_error(range.id, "expected three or four arguments")),
        },
    };
    let (k, v) = iter_vars(helper, &first, &second)?;
    rewrite_map_literals(helper, &mut value);

    // The element appended to the accumulator for each entry.
    let element = match kind {
        Transform::List | Transform::MapEntry => with_entry_vars(helper, &k, &v, value),
        Transform::Map => {
            let entry = ident(helper, ENTRY_VAR);
            let zero = int_lit(helper, 0);
            let key = call(helper, operators::INDEX, vec![entry, zero]);
            let value = with_entry_vars(helper, &k, &v, value);
            list(helper, vec![key, value])
        }
    };
    let accu = ident(helper, ACCU_VAR);
    let appended = list(helper, vec![element]);
    let mut step = call(helper, operators::ADD, vec![accu, appended]);
    if let Some(filter) = filter {
        let filter = with_entry_vars(helper, &k, &v, filter);
        let accu = ident(helper, ACCU_VAR);
        step = call(helper, operators::CONDITIONAL, vec![filter, step, accu]);
    }
    let init = list(helper, Vec::new());
    let cond = bool_lit(helper, true);
    let result = ident(helper, ACCU_VAR);
    let collected = entries_comprehension(helper, range, init, cond, step, result);
    Ok(Some(match kind {
        Transform::List => collected,
        Transform::Map => call(helper, PAIRS_TO_MAP_FN, vec![collected]),
        Transform::MapEntry => call(helper, MERGE_MAPS_FN, vec![collected]),
    }))
}

/// Replaces the map literals of `expr` (but those with optional entries) by
/// `@mapOf([k1, v1, ...])`.
fn rewrite_map_literals(helper: &mut MacroExprHelper<'_>, expr: &mut IdedExpr) {
    match &mut expr.expr {
        Expr::Map(map) => {
            let plain = map
                .entries
                .iter()
                .all(|e| matches!(&e.expr, EntryExpr::MapEntry(m) if !m.optional));
            if plain {
                let mut flat = Vec::with_capacity(map.entries.len() * 2);
                for entry in std::mem::take(&mut map.entries) {
                    if let EntryExpr::MapEntry(mut m) = entry.expr {
                        rewrite_map_literals(helper, &mut m.key);
                        rewrite_map_literals(helper, &mut m.value);
                        flat.push(m.key);
                        flat.push(m.value);
                    }
                }
                let flat = list(helper, flat);
                *expr = call(helper, MAP_OF_FN, vec![flat]);
            } else {
                for entry in &mut map.entries {
                    if let EntryExpr::MapEntry(m) = &mut entry.expr {
                        rewrite_map_literals(helper, &mut m.key);
                        rewrite_map_literals(helper, &mut m.value);
                    }
                }
            }
        }
        Expr::Call(c) => {
            if let Some(target) = c.target.as_mut() {
                rewrite_map_literals(helper, target);
            }
            for a in &mut c.args {
                rewrite_map_literals(helper, a);
            }
        }
        Expr::List(l) => {
            for e in &mut l.elements {
                rewrite_map_literals(helper, e);
            }
        }
        Expr::Select(s) => rewrite_map_literals(helper, &mut s.operand),
        Expr::Comprehension(c) => {
            rewrite_map_literals(helper, &mut c.iter_range);
            rewrite_map_literals(helper, &mut c.accu_init);
            rewrite_map_literals(helper, &mut c.loop_cond);
            rewrite_map_literals(helper, &mut c.loop_step);
            rewrite_map_literals(helper, &mut c.result);
        }
        Expr::Struct(s) => {
            for entry in &mut s.entries {
                if let EntryExpr::StructField(f) = &mut entry.expr {
                    rewrite_map_literals(helper, &mut f.value);
                }
            }
        }
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
}

// ---------------------------------------------------------------------------
// Helper functions.
// ---------------------------------------------------------------------------

/// `now - ts`.
fn time_since_fn<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let now = arg::<CelTimestamp>("timeSince", &args, 0)?;
    let ts = arg::<CelTimestamp>("timeSince", &args, 1)?;
    let delta = now.inner().signed_duration_since(ts.inner());
    Ok(CowVal::owned(CelDuration::from(delta)))
}

/// The `[key, value]` pairs of a map, or `[index, element]` pairs of a list.
fn entries<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [target] = take_args(args)?;
    let mut pairs: Vec<Box<dyn Val + 'v>> = Vec::new();
    match target.get_type().kind() {
        Kind::List => {
            let iterable = target
                .as_iterable()
                .ok_or_else(|| no_overload(ENTRIES_FN, std::slice::from_ref(&target)))?;
            let mut iter = iterable.iter();
            let mut index = 0i64;
            while let Some(item) = iter.next() {
                let pair: Vec<Box<dyn Val + 'v>> =
                    vec![Box::new(CelInt::from(index)), item.clone_as_boxed()];
                pairs.push(Box::new(CelList::from(pair)));
                index += 1;
            }
        }
        Kind::Map => {
            if let Some(map) = target.downcast_ref::<CelMap>() {
                for (key, value) in map.inner() {
                    let pair: Vec<Box<dyn Val + 'v>> =
                        vec![key.inner().clone_as_boxed(), value.clone_as_boxed()];
                    pairs.push(Box::new(CelList::from(pair)));
                }
            } else {
                let (iterable, indexer) = target
                    .as_iterable()
                    .zip(target.as_indexer())
                    .ok_or_else(|| no_overload(ENTRIES_FN, std::slice::from_ref(&target)))?;
                let mut iter = iterable.iter();
                while let Some(key) = iter.next() {
                    let value = indexer.get(key)?.into_owned();
                    let pair: Vec<Box<dyn Val + 'v>> = vec![key.clone_as_boxed(), value];
                    pairs.push(Box::new(CelList::from(pair)));
                }
            }
        }
        _ => return Err(no_overload(ENTRIES_FN, std::slice::from_ref(&target))),
    }
    Ok(owned_list(pairs))
}

/// A map key from a value: CEL's key types, and doubles holding a whole
/// number, which cel-go finds under the equal int key.
pub(crate) fn map_key<'v>(
    function: &str,
    key: Box<dyn Val + 'v>,
) -> Result<CelMapKey<'v>, ExecutionError> {
    if let Some(d) = key.downcast_ref::<CelDouble>() {
        let d = *d.inner();
        if d.fract() == 0.0 && d >= -(2f64.powi(63)) && d < 2f64.powi(63) {
            return Ok(CelMapKey::Int(CelInt::from(d as i64)));
        }
        return Err(fn_error(
            function,
            format!("unsupported map key type: double {d}"),
        ));
    }
    CelMapKey::try_from(key)
}

/// Elements of an owned-or-borrowed list, cloned.
fn elements<'v>(
    function: &str,
    list: &(dyn Val + 'v),
) -> Result<Vec<Box<dyn Val + 'v>>, ExecutionError> {
    Ok(super::util::list_items(function, list)?
        .into_iter()
        .map(|item| item.clone_as_boxed())
        .collect())
}

/// A map from `[[k1, v1], [k2, v2], ...]`.
fn pairs_to_map<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [pairs] = take_args(args)?;
    let mut map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = HashMap::new();
    for pair in elements("transformMap", pairs.as_ref())? {
        let [key, value] =
            <[Box<dyn Val + 'v>; 2]>::try_from(elements("transformMap", pair.as_ref())?)
                .map_err(|_| fn_error("transformMap", "malformed entry"))?;
        map.insert(map_key("transformMap", key)?, value);
    }
    Ok(CowVal::owned(CelMap::from(map)))
}

/// The union of a list of maps, failing on a key two of them have.
fn merge_maps<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [maps] = take_args(args)?;
    let mut merged: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = HashMap::new();
    for map in super::util::list_items("transformMapEntry", maps.as_ref())? {
        let Some(map) = map.downcast_ref::<CelMap>() else {
            return Err(fn_error(
                "transformMapEntry",
                format!("expected a map entry, got {}", map.get_type().name()),
            ));
        };
        for (key, value) in map.inner() {
            if merged.contains_key(key) {
                return Err(fn_error(
                    "transformMapEntry",
                    format!("insert failed: key {key:?} already exists"),
                ));
            }
            merged.insert(key.clone(), value.clone_as_boxed());
        }
    }
    Ok(CowVal::owned(CelMap::from(merged)))
}

/// A map from `[k1, v1, k2, v2, ...]`; a repeated key keeps its last value,
/// as map literals do in this environment.
fn map_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [flat] = take_args(args)?;
    let mut items = elements("map literal", flat.as_ref())?.into_iter();
    let mut map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = HashMap::new();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        map.insert(map_key("map literal", key)?, value);
    }
    Ok(CowVal::owned(CelMap::from(map)))
}
