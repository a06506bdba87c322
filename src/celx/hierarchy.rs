//! Cerbos's `hierarchy` type: a dot-separated path such as `a.b.c`, with
//! ancestry tests between paths.
//!
//! ```text
//! hierarchy("a.b.c") == hierarchy(["a", "b", "c"])
//! hierarchy("a:b:c", ":").size() == 3
//! hierarchy("a.b").ancestorOf(hierarchy("a.b.c"))
//! hierarchy("a.b.c.d")[1] == "b"
//! ```

use super::util::{arg, fn_error, list_items, no_overload, take_args, FnResult};
use cel::common::traits::Indexer;
use cel::common::types::{CelBool, CelInt, CelString, Type, LIST_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use std::any::Any;

/// The CEL type of hierarchies, named as Cerbos names it.
pub(crate) static HIERARCHY_TYPE: Type = Type::new_unspecified_type("cerbos.lib.hierarchy");

/// The separator of `hierarchy(string)`, and of `string(hierarchy)`.
const DELIMITER: &str = ".";

/// A hierarchy value: its segments, in order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Hierarchy(Vec<CelString<'static>>);

impl Hierarchy {
    fn new(segments: Vec<String>) -> Self {
        Hierarchy(segments.into_iter().map(CelString::from).collect())
    }

    fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|s| s.inner())
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_prefix_of(&self, other: &Hierarchy) -> bool {
        self.0.len() <= other.0.len() && self.segments().zip(other.segments()).all(|(a, b)| a == b)
    }

    /// `self` is a strict ancestor of `other`.
    fn ancestor_of(&self, other: &Hierarchy) -> bool {
        other.len() > self.len() && self.is_prefix_of(other)
    }

    /// `self` is the parent of `other`.
    fn immediate_parent_of(&self, other: &Hierarchy) -> bool {
        other.len() == self.len() + 1 && self.is_prefix_of(other)
    }

    /// Same length, and the same segments but for the last.
    fn sibling_of(&self, other: &Hierarchy) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let n = self.len().saturating_sub(1);
        self.segments()
            .take(n)
            .zip(other.segments().take(n))
            .all(|(a, b)| a == b)
    }

    /// One is a prefix of the other.
    fn overlaps(&self, other: &Hierarchy) -> bool {
        let (short, long) = if other.len() < self.len() {
            (other, self)
        } else {
            (self, other)
        };
        short.is_prefix_of(long)
    }

    /// The longest common prefix, leaving out the last segment when both have
    /// the same length (a path is not its own ancestor).
    fn common_ancestors(&self, other: &Hierarchy) -> Hierarchy {
        let (short, long) = if other.len() < self.len() {
            (other, self)
        } else {
            (self, other)
        };
        let mut limit = short.len();
        if long.len() == short.len() {
            limit = limit.saturating_sub(1);
        }
        Hierarchy(
            short
                .0
                .iter()
                .zip(long.0.iter())
                .take(limit)
                .take_while(|(a, b)| a.inner() == b.inner())
                .map(|(a, _)| a.clone())
                .collect(),
        )
    }
}

impl std::fmt::Display for Hierarchy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let joined: Vec<&str> = self.segments().collect();
        f.write_str(&joined.join(DELIMITER))
    }
}

impl Val for Hierarchy {
    fn get_type(&self) -> &Type {
        &HIERARCHY_TYPE
    }

    fn cel_type() -> &'static Type {
        &HIERARCHY_TYPE
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<Hierarchy>().is_some_and(|o| o == self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(self.clone())
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl StaticVal for Hierarchy {}

impl Indexer for Hierarchy {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let Some(i) = idx.downcast_ref::<CelInt>() else {
            return Err(ExecutionError::UnexpectedType {
                got: idx.get_type().name().to_owned(),
                want: "int".to_owned(),
            });
        };
        let i = *i.inner();
        usize::try_from(i)
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|s| CowVal::Borrowed(s as &dyn Val))
            .ok_or_else(|| fn_error("hierarchy", format!("index out of range: {i}")))
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

/// Registers `hierarchy()` and the hierarchy methods.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(HIERARCHY_TYPE.to_owned())?;
    let h = || HIERARCHY_TYPE.to_owned();
    env.add_overload(
        "hierarchy",
        "hierarchy_string",
        vec![STRING_TYPE],
        from_string,
    )?;
    env.add_overload(
        "hierarchy",
        "hierarchy_string_string",
        vec![STRING_TYPE, STRING_TYPE],
        from_string_delimited,
    )?;
    env.add_overload(
        "hierarchy",
        "hierarchy_stringarray",
        vec![LIST_TYPE],
        from_list,
    )?;
    env.add_overload("hierarchy", "hierarchy_hierarchy", vec![h()], identity)?;
    env.add_member_overload("size", "hierarchy_size", h(), vec![], size)?;
    env.add_overload("size", "size_hierarchy", vec![h()], size)?;
    env.add_overload("string", "hierarchy_to_string", vec![h()], to_string)?;
    for (name, f) in [
        (
            "ancestorOf",
            ancestor_of as cel::common::functions::Function,
        ),
        ("commonAncestors", common_ancestors),
        ("descendentOf", descendent_of),
        ("immediateChildOf", immediate_child_of),
        ("immediateParentOf", immediate_parent_of),
        ("overlaps", overlaps),
        ("siblingOf", sibling_of),
    ] {
        env.add_member_overload(name, name, h(), vec![h()], f)?;
    }
    Ok(())
}

fn from_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let s = arg::<CelString>("hierarchy", &args, 0)?;
    Ok(CowVal::owned(Hierarchy::new(
        s.split(DELIMITER).map(str::to_owned).collect(),
    )))
}

fn from_string_delimited<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let s = arg::<CelString>("hierarchy", &args, 0)?;
    let delimiter = arg::<CelString>("hierarchy", &args, 1)?;
    let segments: Vec<String> = if delimiter.is_empty() {
        // Go's strings.Split with an empty separator splits into code points.
        s.chars().map(String::from).collect()
    } else {
        s.split(delimiter.inner()).map(str::to_owned).collect()
    };
    Ok(CowVal::owned(Hierarchy::new(segments)))
}

fn from_list<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [list] = take_args(args)?;
    let mut segments = Vec::new();
    for item in list_items("hierarchy", list.as_ref())? {
        let Some(s) = item.downcast_ref::<CelString>() else {
            return Err(fn_error(
                "hierarchy",
                format!(
                    "failed to convert list to string slice: element of type {}",
                    item.get_type().name()
                ),
            ));
        };
        segments.push(s.inner().to_owned());
    }
    Ok(CowVal::owned(Hierarchy::new(segments)))
}

fn identity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [h] = take_args(args)?;
    Ok(h)
}

fn size<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let h = arg::<Hierarchy>("size", &args, 0)?;
    Ok(CowVal::owned(CelInt::from(h.len() as i64)))
}

fn to_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let h = arg::<Hierarchy>("string", &args, 0)?;
    Ok(CowVal::owned(CelString::from(h.to_string())))
}

/// The receiver and argument of a hierarchy method.
fn pair<'a>(
    function: &str,
    args: &'a [CowVal<'_, '_>],
) -> Result<(&'a Hierarchy, &'a Hierarchy), ExecutionError> {
    if args.len() != 2 {
        return Err(no_overload(function, args));
    }
    Ok((
        arg::<Hierarchy>(function, args, 0)?,
        arg::<Hierarchy>(function, args, 1)?,
    ))
}

fn boolean<'b, 'v>(b: bool) -> FnResult<'b, 'v> {
    Ok(CowVal::Borrowed(if b {
        &CelBool::TRUE
    } else {
        &CelBool::FALSE
    }))
}

fn ancestor_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let (a, b) = pair("ancestorOf", &args)?;
    boolean(a.ancestor_of(b))
}

fn descendent_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let (a, b) = pair("descendentOf", &args)?;
    boolean(b.ancestor_of(a))
}

fn immediate_parent_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let (a, b) = pair("immediateParentOf", &args)?;
    boolean(a.immediate_parent_of(b))
}

fn immediate_child_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let (a, b) = pair("immediateChildOf", &args)?;
    boolean(b.immediate_parent_of(a))
}

fn overlaps<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let (a, b) = pair("overlaps", &args)?;
    boolean(a.overlaps(b))
}

fn sibling_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let (a, b) = pair("siblingOf", &args)?;
    boolean(a.sibling_of(b))
}

fn common_ancestors<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let (a, b) = pair("commonAncestors", &args)?;
    Ok(CowVal::owned(a.common_ancestors(b)))
}
