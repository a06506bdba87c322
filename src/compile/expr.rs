//! CEL expressions and condition trees, compiled once per distinct source.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::direct::Direct;
use crate::celx::Program;
use cel::common::ast::{Expr, IdedExpr, LiteralValue};

use crate::celx;
use crate::policy::model::Match;

/// One compiled CEL expression with what it refers to.
#[derive(Debug)]
pub struct CompiledExpr {
    /// The expression as written, for logs and errors.
    pub source: Arc<str>,
    /// The program.
    pub program: Program,
    /// Names read through `V.x` / `variables.x` / `V["x"]`.
    pub variables: BTreeSet<String>,
    /// Whether `V` / `variables` is also read other than by a literal name
    /// (`V[key]`, `V` itself), so that any variable may be read.
    pub reads_all_variables: bool,
    /// Names read through `C.x` / `constants.x`.
    pub constants: BTreeSet<String>,
    /// Whether `runtime` is read, so its value is only built when needed.
    pub reads_runtime: bool,
    /// The direct form the engine tries before `cel`, when there is one.
    pub direct: Option<Direct>,
}

/// A compiled `match` tree.
#[derive(Debug, Clone)]
pub enum Condition {
    /// A single expression.
    Expr(Arc<CompiledExpr>),
    /// Every child holds.
    All(Vec<Condition>),
    /// Some child holds.
    Any(Vec<Condition>),
    /// No child holds.
    None(Vec<Condition>),
}

impl Condition {
    /// Whether some expression of the tree reads `runtime`.
    pub fn reads_runtime(&self) -> bool {
        let mut reads = false;
        self.for_each_expr(&mut |expr| reads |= expr.reads_runtime);
        reads
    }

    /// Calls `f` on every expression of the tree.
    pub fn for_each_expr(&self, f: &mut dyn FnMut(&Arc<CompiledExpr>)) {
        match self {
            Condition::Expr(e) => f(e),
            Condition::All(c) | Condition::Any(c) | Condition::None(c) => {
                c.iter().for_each(|c| c.for_each_expr(f))
            }
        }
    }
}

/// Compiles expressions, sharing the result among identical sources: a
/// policy set generated from templates repeats the same conditions many
/// times, and each is parsed only once.
#[derive(Default)]
pub struct ExprCache {
    by_source: HashMap<String, Arc<CompiledExpr>>,
}

impl ExprCache {
    /// How many distinct expressions were compiled.
    pub fn len(&self) -> usize {
        self.by_source.len()
    }

    /// Compiles `source`, or returns the earlier result for the same text.
    pub fn compile(&mut self, source: &str) -> Result<Arc<CompiledExpr>, String> {
        if let Some(done) = self.by_source.get(source) {
            return Ok(Arc::clone(done));
        }
        let program = celx::compile(source).map_err(|e| e.to_string())?;
        let mut refs = References::default();
        celx::visit(program.expression(), &mut |node| refs.note_node(node));
        let direct = Direct::from_expr(program.expression());
        let compiled = Arc::new(CompiledExpr {
            source: Arc::from(source.trim()),
            program,
            reads_all_variables: refs.variable_roots > refs.variable_names,
            variables: refs.variables,
            constants: refs.constants,
            reads_runtime: refs.runtime,
            direct,
        });
        self.by_source
            .insert(source.to_string(), Arc::clone(&compiled));
        Ok(compiled)
    }

    /// Compiles a `match` tree; the error carries the failing expression.
    pub fn condition(&mut self, node: &Match) -> Result<Condition, (String, String)> {
        if let Some(expr) = &node.expr {
            return self
                .compile(expr)
                .map(Condition::Expr)
                .map_err(|m| (expr.clone(), m));
        }
        let children = |cache: &mut Self, list: &[Match]| {
            list.iter()
                .map(|child| cache.condition(child))
                .collect::<Result<Vec<_>, _>>()
        };
        if let Some(list) = &node.all {
            return children(self, &list.of).map(Condition::All);
        }
        if let Some(list) = &node.any {
            return children(self, &list.of).map(Condition::Any);
        }
        if let Some(list) = &node.none {
            return children(self, &list.of).map(Condition::None);
        }
        // The policy stage rejects empty match nodes; an empty `all` holds.
        Ok(Condition::All(Vec::new()))
    }
}

#[derive(Default)]
struct References {
    variables: BTreeSet<String>,
    constants: BTreeSet<String>,
    runtime: bool,
    /// Occurrences of the `V` / `variables` identifier.
    variable_roots: usize,
    /// Of those, the ones that select a variable by a literal name.
    variable_names: usize,
}

impl References {
    fn note(&mut self, root: &str, name: &str) {
        match root {
            "V" | "variables" => {
                self.variable_names += 1;
                self.variables.insert(name.to_string());
            }
            "C" | "constants" => {
                self.constants.insert(name.to_string());
            }
            _ => {}
        }
    }

    /// Notes what one node reads; `celx::visit` takes it through the tree.
    fn note_node(&mut self, node: &IdedExpr) {
        match &node.expr {
            Expr::Ident(name) if name == "runtime" => self.runtime = true,
            Expr::Ident(name) if name == "V" || name == "variables" => self.variable_roots += 1,
            Expr::Select(select) => {
                if let Expr::Ident(root) = &select.operand.expr {
                    self.note(root, &select.field);
                }
            }
            Expr::Call(call) if call.func_name == "_[_]" => {
                if let [IdedExpr {
                    expr: Expr::Ident(root),
                    ..
                }, IdedExpr {
                    expr: Expr::Literal(LiteralValue::String(key)),
                    ..
                }] = call.args.as_slice()
                {
                    self.note(root, key.inner());
                }
            }
            _ => {}
        }
    }
}

/// The positions in `variables` (in evaluation order) of those `expr`
/// reads: all of them when it reads `V` as a whole.
pub fn variables_read<'v>(
    variables: &'v [(Arc<str>, Arc<CompiledExpr>)],
    expr: &'v CompiledExpr,
) -> impl Iterator<Item = usize> + 'v {
    variables
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| expr.reads_all_variables || expr.variables.contains(&**name))
        .map(|(i, _)| i)
}

/// Orders variable definitions so each comes after those it reads.
///
/// `defined` maps each name to the variables its expression reads. Returns
/// the names in evaluation order, or the names forming a cycle.
pub fn order_variables(defined: &[(String, BTreeSet<String>)]) -> Result<Vec<String>, Vec<String>> {
    let index: HashMap<&str, usize> = defined
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.as_str(), i))
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    let mut marks = vec![Mark::New; defined.len()];
    let mut order = Vec::with_capacity(defined.len());
    let mut stack: Vec<usize> = Vec::new();

    fn visit(
        i: usize,
        defined: &[(String, BTreeSet<String>)],
        index: &HashMap<&str, usize>,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        order: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = stack.iter().position(|&s| s == i).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..]
                    .iter()
                    .map(|&s| defined[s].0.clone())
                    .collect();
                cycle.push(defined[i].0.clone());
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks[i] = Mark::Visiting;
        stack.push(i);
        for dep in &defined[i].1 {
            if let Some(&j) = index.get(dep.as_str()) {
                visit(j, defined, index, marks, stack, order)?;
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
        order.push(defined[i].0.clone());
        Ok(())
    }

    for i in 0..defined.len() {
        visit(i, defined, &index, &mut marks, &mut stack, &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(pairs: &[(&str, &[&str])]) -> Vec<(String, BTreeSet<String>)> {
        pairs
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn dependencies_come_first() {
        let order = order_variables(&deps(&[("a", &["b"]), ("b", &["c"]), ("c", &[])])).unwrap();
        assert_eq!(order, ["c", "b", "a"]);
    }

    #[test]
    fn cycles_are_reported() {
        let cycle = order_variables(&deps(&[("a", &["b"]), ("b", &["a"])])).unwrap_err();
        assert_eq!(cycle, ["a", "b", "a"]);
    }

    #[test]
    fn references_are_found() {
        let mut cache = ExprCache::default();
        let e = cache
            .compile("V.a && variables.b || C.c == constants[\"d\"] && V[\"e\"] > 1 && runtime.effectiveDerivedRoles.size() > 0")
            .unwrap();
        assert_eq!(e.variables.iter().collect::<Vec<_>>(), ["a", "b", "e"]);
        assert_eq!(e.constants.iter().collect::<Vec<_>>(), ["c", "d"]);
        assert!(e.reads_runtime);
        assert!(!e.reads_all_variables);
    }

    #[test]
    fn reading_variables_by_a_computed_name_reads_them_all() {
        let mut cache = ExprCache::default();
        for source in [
            "V[R.attr.which]",
            "V.a && V.size() > 1",
            "[1].exists(V, V > 0)",
        ] {
            assert!(
                cache.compile(source).unwrap().reads_all_variables,
                "{source}"
            );
        }
    }

    #[test]
    fn identical_sources_compile_once() {
        let mut cache = ExprCache::default();
        let a = cache.compile("R.attr.owner == P.id").unwrap();
        let b = cache.compile("R.attr.owner == P.id").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn syntax_errors_are_reported() {
        let mut cache = ExprCache::default();
        assert!(cache.compile("R.attr.owner ==").is_err());
    }
}
