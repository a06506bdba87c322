//! Small helpers shared by the function libraries of this module.

use cel::common::ast::{CallExpr, ComprehensionExpr, Expr, IdedExpr, ListExpr, LiteralValue};
use cel::common::types::{CelList, Kind};
use cel::common::value::{CowVal, FromVal, Val};
use cel::parser::MacroExprHelper;
use cel::ExecutionError;

/// What an overload returns.
pub(crate) type FnResult<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

/// The error of a call whose arguments have types no overload accepts.
pub(crate) fn no_overload(function: &str, args: &[CowVal<'_, '_>]) -> ExecutionError {
    ExecutionError::no_such_overload(
        function,
        args.iter()
            .map(|a| a.get_type().name().to_owned())
            .collect(),
    )
}

/// Argument `index` of `args`, as a `T`, or a no-such-overload error for
/// `function`.
pub(crate) fn arg<'a, 'v, T>(
    function: &str,
    args: &'a [CowVal<'_, 'v>],
    index: usize,
) -> Result<&'a T, ExecutionError>
where
    T: FromVal<'a, 'v>,
{
    args.get(index)
        .and_then(|a| {
            let v: &'a (dyn Val + 'v) = a.as_ref();
            v.downcast_ref::<T>()
        })
        .ok_or_else(|| no_overload(function, args))
}

/// Exactly `N` arguments, or an argument-count error.
pub(crate) fn take_args<'b, 'v, const N: usize>(
    args: Vec<CowVal<'b, 'v>>,
) -> Result<[CowVal<'b, 'v>; N], ExecutionError> {
    args.try_into()
        .map_err(|args: Vec<_>| ExecutionError::invalid_argument_count(N, args.len()))
}

/// The elements of a `list` value, borrowed. Fails for anything that is not a
/// list (maps are iterable too, but are no lists).
pub(crate) fn list_items<'a, 'v>(
    function: &str,
    list: &'a (dyn Val + 'v),
) -> Result<Vec<&'a (dyn Val + 'v)>, ExecutionError> {
    let not_a_list = || ExecutionError::UnexpectedType {
        got: list.get_type().name().to_owned(),
        want: format!("list (argument of {function})"),
    };
    if list.get_type().kind() != Kind::List {
        return Err(not_a_list());
    }
    let iterable = list.as_iterable().ok_or_else(not_a_list)?;
    let mut iter = iterable.iter();
    let mut items = Vec::new();
    while let Some(item) = iter.next() {
        items.push(item);
    }
    Ok(items)
}

/// Whether `needle` equals one of `haystack`, by CEL equality.
pub(crate) fn contains_equal(haystack: &[&dyn Val], needle: &dyn Val) -> bool {
    haystack.iter().any(|item| needle.equals(*item))
}

/// An owned list value of `items`.
pub(crate) fn owned_list<'b, 'v>(items: Vec<Box<dyn Val + 'v>>) -> CowVal<'b, 'v> {
    CowVal::owned(CelList::from(items))
}

/// A function error for `function`.
pub(crate) fn fn_error(function: &str, message: impl std::fmt::Display) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

// ---------------------------------------------------------------------------
// AST building blocks for macros.
// ---------------------------------------------------------------------------

/// `name`, an identifier.
pub(crate) fn ident(helper: &mut MacroExprHelper<'_>, name: &str) -> IdedExpr {
    helper.next_expr(Expr::Ident(name.to_owned()))
}

/// A global call `function(args...)`.
pub(crate) fn call(
    helper: &mut MacroExprHelper<'_>,
    function: &str,
    args: Vec<IdedExpr>,
) -> IdedExpr {
    helper.next_expr(Expr::Call(CallExpr {
        func_name: function.to_owned(),
        target: None,
        args,
    }))
}

/// A literal.
pub(crate) fn literal(helper: &mut MacroExprHelper<'_>, value: LiteralValue) -> IdedExpr {
    helper.next_expr(Expr::Literal(value))
}

/// A boolean literal.
pub(crate) fn bool_lit(helper: &mut MacroExprHelper<'_>, value: bool) -> IdedExpr {
    literal(helper, LiteralValue::Boolean(value.into()))
}

/// An int literal.
pub(crate) fn int_lit(helper: &mut MacroExprHelper<'_>, value: i64) -> IdedExpr {
    literal(helper, LiteralValue::Int(value.into()))
}

/// A list literal.
pub(crate) fn list(helper: &mut MacroExprHelper<'_>, elements: Vec<IdedExpr>) -> IdedExpr {
    helper.next_expr(Expr::List(ListExpr::new(elements)))
}

/// `name` bound to the value of `init` while `body` is evaluated: a
/// comprehension over no elements whose accumulator is `name`, as cel-go's
/// `cel.bind` expands to.
pub(crate) fn bind(
    helper: &mut MacroExprHelper<'_>,
    name: &str,
    init: IdedExpr,
    body: IdedExpr,
) -> IdedExpr {
    let iter_range = list(helper, Vec::new());
    let loop_cond = bool_lit(helper, false);
    let loop_step = ident(helper, name);
    helper.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range,
        iter_var: "#unused".to_owned(),
        iter_var2: None,
        accu_var: name.to_owned(),
        accu_init: init,
        loop_cond,
        loop_step,
        result: body,
    })))
}

/// The name of an identifier expression, or a parse error at it.
pub(crate) fn simple_name(
    helper: &mut MacroExprHelper<'_>,
    expr: &IdedExpr,
    what: &str,
) -> Result<String, cel::ParseError> {
    match &expr.expr {
        Expr::Ident(name) => Ok(name.clone()),
        _ => Err(helper.new_error(expr.id, format!("{what} must be a simple name"))),
    }
}
