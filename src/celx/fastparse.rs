//! What the fast (Pratt) parser's output needs before it can be used.
//!
//! The Pratt parser expands only CEL's standard macros. `now()` and
//! `timeSince()` are common in policies and trivial to expand here; calls
//! that another of the environment's macros would expand are detected so the
//! expression can be parsed again with the full parser.

use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr};

use super::NOW_VARIABLE;

/// Name of the helper `ts.timeSince()` expands to (see `macros.rs`).
const TIME_SINCE_FN: &str = "@timeSince";

/// Whether a call in `expr` is one a non-standard macro of the environment
/// expands (other than `now()`/`timeSince()`, which [`expand_time_macros`]
/// handles).
pub fn needs_environment_macros(expr: &IdedExpr) -> bool {
    let mut found = false;
    visit(expr, &mut |node| {
        if let Expr::Call(call) = &node.expr {
            found |= is_environment_macro(call);
        }
    });
    found
}

fn target_is(call: &CallExpr, name: &str) -> bool {
    matches!(call.target.as_deref(), Some(IdedExpr { expr: Expr::Ident(t), .. }) if t == name)
}

fn is_environment_macro(call: &CallExpr) -> bool {
    let receiver = call.target.is_some();
    let args = call.args.len();
    match call.func_name.as_str() {
        "all" | "exists" | "existsOne" | "exists_one" => receiver && args == 3,
        "transformList" | "transformMap" | "transformMapEntry" => {
            receiver && (args == 3 || args == 4)
        }
        "sortBy" => receiver && args == 2,
        "bind" => target_is(call, "cel") && args == 3,
        "greatest" | "least" => target_is(call, "math"),
        _ => false,
    }
}

/// Rewrites `now()` to the request-time variable and `ts.timeSince()` /
/// `timeSince(ts)` to its difference with it, as the environment's macros do.
pub fn expand_time_macros(expr: &mut IdedExpr) {
    rewrite_bottom_up(expr, &mut expand_time_macro);
}

/// Calls `f` on every node of the tree, children before their parent, so
/// that `f` sees a node's operands already rewritten. `f` takes ids for the
/// nodes it adds from the counter it is given, which starts past the tree's.
pub(super) fn rewrite_bottom_up(expr: &mut IdedExpr, f: &mut dyn FnMut(&mut IdedExpr, &mut u64)) {
    fn walk(node: &mut IdedExpr, f: &mut dyn FnMut(&mut IdedExpr, &mut u64), next_id: &mut u64) {
        for child in children_mut(&mut node.expr) {
            walk(child, f, next_id);
        }
        f(node, next_id);
    }
    let mut next_id = max_id(expr) + 1;
    walk(expr, f, &mut next_id);
}

fn expand_time_macro(node: &mut IdedExpr, next_id: &mut u64) {
    let Expr::Call(call) = &mut node.expr else {
        return;
    };
    let replacement = match (
        call.func_name.as_str(),
        call.target.is_some(),
        call.args.len(),
    ) {
        ("now", false, 0) => Some(Expr::Ident(NOW_VARIABLE.to_string())),
        ("timeSince", true, 0) => call.target.take().map(|ts| time_since(*ts, next_id)),
        ("timeSince", false, 1) => call.args.pop().map(|ts| time_since(ts, next_id)),
        _ => None,
    };
    if let Some(expr) = replacement {
        node.expr = expr;
    }
}

/// `@timeSince(@now, ts)`.
fn time_since(operand: IdedExpr, next_id: &mut u64) -> Expr {
    let now = IdedExpr {
        id: take_id(next_id),
        expr: Expr::Ident(NOW_VARIABLE.to_string()),
    };
    Expr::Call(CallExpr {
        func_name: TIME_SINCE_FN.to_string(),
        target: None,
        args: vec![now, operand],
    })
}

pub(super) fn take_id(next_id: &mut u64) -> u64 {
    *next_id += 1;
    *next_id - 1
}

fn max_id(expr: &IdedExpr) -> u64 {
    let mut max = 0;
    visit(expr, &mut |node| max = max.max(node.id));
    max
}

/// Calls `f` on every node of the tree, parents before children.
pub fn visit(node: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    f(node);
    match &node.expr {
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                visit(target, f);
            }
            call.args.iter().for_each(|a| visit(a, f));
        }
        Expr::Comprehension(c) => {
            for e in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                visit(e, f);
            }
        }
        Expr::List(list) => list.elements.iter().for_each(|e| visit(e, f)),
        Expr::Map(map) => map.entries.iter().for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(e) => {
                visit(&e.key, f);
                visit(&e.value, f);
            }
            EntryExpr::StructField(s) => visit(&s.value, f),
        }),
        Expr::Struct(s) => s.entries.iter().for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(e) => {
                visit(&e.key, f);
                visit(&e.value, f);
            }
            EntryExpr::StructField(s) => visit(&s.value, f),
        }),
        Expr::Select(select) => visit(&select.operand, f),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn children_mut(expr: &mut Expr) -> Vec<&mut IdedExpr> {
    match expr {
        Expr::Call(call) => {
            let mut out: Vec<&mut IdedExpr> = Vec::with_capacity(call.args.len() + 1);
            if let Some(target) = call.target.as_deref_mut() {
                out.push(target);
            }
            out.extend(call.args.iter_mut());
            out
        }
        Expr::Comprehension(c) => {
            let c = &mut **c;
            vec![
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ]
        }
        Expr::List(list) => list.elements.iter_mut().collect(),
        Expr::Map(map) => map
            .entries
            .iter_mut()
            .flat_map(|entry| match &mut entry.expr {
                EntryExpr::MapEntry(e) => vec![&mut e.key, &mut e.value],
                EntryExpr::StructField(s) => vec![&mut s.value],
            })
            .collect(),
        Expr::Struct(s) => s
            .entries
            .iter_mut()
            .flat_map(|entry| match &mut entry.expr {
                EntryExpr::MapEntry(e) => vec![&mut e.key, &mut e.value],
                EntryExpr::StructField(s) => vec![&mut s.value],
            })
            .collect(),
        Expr::Select(select) => vec![&mut *select.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::compile;

    fn same_as_full_parser(source: &str) {
        let fast = compile(source).unwrap();
        let mut full = super::super::environment()
            .compile(source)
            .unwrap()
            .expression()
            .clone();
        super::super::lookup::index_activation_selects(&mut full);
        // Ids may differ; compare the shape through the debug form minus ids.
        let strip = |s: String| {
            s.split("id: ")
                .map(|part| part.trim_start_matches(|c: char| c.is_ascii_digit()))
                .collect::<String>()
        };
        assert_eq!(
            strip(format!("{:?}", fast.expression().expr)),
            strip(format!("{:?}", full.expr)),
            "{source}"
        );
    }

    #[test]
    fn fast_parse_matches_the_full_parser() {
        for source in [
            "R.attr.owner == P.id && P.attr.level > 3",
            "\"a\" in P.attr.teams && size(R.attr.tags) < 10",
            "P.attr.teams.exists(t, t.startsWith(\"x\"))",
            "has(R.attr.public) ? R.attr.public : false",
            "[1, 2, 3].map(x, x > 1, x * 2) == [4, 6]",
            "now() > timestamp(R.attr.created)",
            "timestamp(R.attr.created).timeSince() > duration(\"1h\")",
            "timeSince(timestamp(R.attr.created)) < duration(\"2h\")",
            "R.attr.?missing.orValue(1) == 1",
        ] {
            same_as_full_parser(source);
        }
    }

    #[test]
    fn environment_macros_fall_back_to_the_full_parser() {
        for source in [
            "[1, 2].all(i, v, v > i)",
            "{'a': 1}.transformMap(k, v, v + 1) == {'a': 2}",
            "cel.bind(x, 2, x * x) == 4",
            "[3, 1].sortBy(x, x) == [1, 3]",
            "math.greatest(1, 2) == 2",
        ] {
            assert!(compile(source).is_ok(), "{source}");
        }
    }

    #[test]
    fn syntax_errors_come_from_the_full_parser() {
        let err = compile("R.attr.owner ==").unwrap_err().to_string();
        assert!(err.contains("R.attr.owner =="), "{err}");
    }
}
