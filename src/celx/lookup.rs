//! Field selections on the activation's variables, turned into index
//! lookups once at compile time.
//!
//! `cel` reads `R.attr.owner` as a possibly qualified name on every
//! evaluation: it collects the segments, joins them, and asks for the
//! variables `R.attr.owner`, `R.attr` and `R` in turn before selecting the
//! fields, two allocations and three lookups per selection. No variable of
//! Verdict's activation has a dot in its name, so the answer is always `R`,
//! and `R["attr"]["owner"]` reads the same value with none of that work. The
//! two forms fail alike: a missing key is `no such key` either way, and
//! selecting from a value that is not a map is `no such overload` either way
//! once the engine words the error as cel-go does.
//!
//! Only chains of plain selections are rewritten, and only from the data
//! roots, whose values come from JSON or YAML and so are never optional
//! values (on which `.f` and `["f"]` differ). A variable (`V.x`) may hold
//! an optional, so only the first step under `V` is rewritten. Presence
//! tests (`has(R.attr.x)`) keep their selection; their operand is
//! rewritten.

use cel::common::ast::{CallExpr, Expr, IdedExpr, LiteralValue};
use cel::common::types::CelString;

use super::fastparse::{rewrite_bottom_up, take_id};

/// The index operator's function name in `cel`'s syntax tree.
const INDEX: &str = "_[_]";

/// Roots whose values, at any depth, are JSON or YAML data.
const DATA_ROOTS: [&str; 8] = [
    "request",
    "P",
    "R",
    "C",
    "constants",
    "G",
    "globals",
    "runtime",
];

/// Roots whose entries are the values of expressions.
const VARIABLE_ROOTS: [&str; 2] = ["V", "variables"];

/// Rewrites `root.a.b` into `root["a"]["b"]` throughout `expr`.
pub fn index_activation_selects(expr: &mut IdedExpr) {
    // Bottom up, so the operand of a selection is already rewritten.
    rewrite_bottom_up(expr, &mut index_select);
}

fn index_select(node: &mut IdedExpr, next_id: &mut u64) {
    let Expr::Select(select) = &mut node.expr else {
        return;
    };
    if select.test || !indexable(&select.operand.expr) {
        return;
    }
    let key = IdedExpr {
        id: take_id(next_id),
        expr: Expr::Literal(LiteralValue::String(CelString::from(std::mem::take(
            &mut select.field,
        )))),
    };
    let operand = std::mem::take(&mut *select.operand);
    node.expr = Expr::Call(CallExpr {
        func_name: INDEX.to_string(),
        target: None,
        args: vec![operand, key],
    });
}

/// Whether `.field` on `operand` may become `["field"]`.
fn indexable(operand: &Expr) -> bool {
    match operand {
        Expr::Ident(name) => {
            DATA_ROOTS.contains(&name.as_str()) || VARIABLE_ROOTS.contains(&name.as_str())
        }
        other => data_rooted(other),
    }
}

/// Whether `expr` is a data root or a literal-key index chain from one.
fn data_rooted(expr: &Expr) -> bool {
    match expr {
        Expr::Ident(name) => DATA_ROOTS.contains(&name.as_str()),
        Expr::Call(call) if call.func_name == INDEX && call.target.is_none() => {
            matches!(
                call.args.as_slice(),
                [operand, IdedExpr { expr: Expr::Literal(LiteralValue::String(_)), .. }]
                    if data_rooted(&operand.expr)
            )
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::compile;
    use cel::common::ast::Expr;

    /// The expression's tree, printed without node ids.
    fn shape(source: &str) -> String {
        let program = compile(source).unwrap();
        format!("{:?}", program.expression().expr)
            .split("id: ")
            .map(|part| part.trim_start_matches(|c: char| c.is_ascii_digit()))
            .collect()
    }

    fn selects(source: &str) -> usize {
        let program = compile(source).unwrap();
        let mut count = 0;
        super::super::visit(program.expression(), &mut |node| {
            count += usize::from(matches!(node.expr, Expr::Select(_)));
        });
        count
    }

    #[test]
    fn data_chains_become_index_lookups() {
        assert_eq!(shape("R.attr.owner"), shape("R[\"attr\"][\"owner\"]"));
        assert_eq!(
            shape("request.principal.attr.x == C.limits.max"),
            shape("request[\"principal\"][\"attr\"][\"x\"] == C[\"limits\"][\"max\"]")
        );
        assert_eq!(selects("P.attr.teams.exists(t, t.name == \"a\")"), 1);
    }

    #[test]
    fn variables_are_indexed_one_level_deep() {
        assert_eq!(shape("V.x"), shape("V[\"x\"]"));
        assert_eq!(shape("V.x.y"), shape("V[\"x\"].y"));
        assert_eq!(shape("variables.x"), shape("variables[\"x\"]"));
    }

    #[test]
    fn presence_tests_and_other_roots_keep_their_selection() {
        assert_eq!(shape("has(R.attr.x)"), shape("has(R[\"attr\"].x)"));
        assert_eq!(selects("a.b.c"), 2);
        assert_eq!(selects("R.attr.?x.y"), 1);
    }
}
