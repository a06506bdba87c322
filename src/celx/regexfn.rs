//! cel-go's regex extension: `regex.replace`, `regex.extract` and
//! `regex.extractAll`.
//!
//! ```text
//! regex.replace("banana", "a", "i") == "binini"
//! regex.replace("foo bar", "(fo)o (ba)r", r"\2 \1") == "ba fo"
//! regex.extract("hello world", "hello(.*)") == optional.of(" world")
//! regex.extractAll("a bb a cc", "a") == ["a", "a"]
//! ```

use super::util::{arg, fn_error, owned_list, FnResult};
use cel::common::types::{CelInt, CelOptional, CelString, INT_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use regex::Regex;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// Patterns compiled so far, so that an expression evaluated for every
/// request compiles its pattern once. Bounded: cleared when full.
static CACHE: LazyLock<Mutex<HashMap<String, Arc<Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const CACHE_CAPACITY: usize = 512;

/// `pattern`, compiled (or taken from the cache).
pub(crate) fn compiled(function: &str, pattern: &str) -> Result<Arc<Regex>, ExecutionError> {
    if let Ok(cache) = CACHE.lock() {
        if let Some(re) = cache.get(pattern) {
            return Ok(Arc::clone(re));
        }
    }
    let re = Arc::new(
        Regex::new(pattern).map_err(|e| fn_error(function, format!("invalid regex: {e}")))?,
    );
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), Arc::clone(&re));
    }
    Ok(re)
}

/// Registers the regex functions.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(
        "regex.replace",
        "regex_replace_string_string_string",
        vec![STRING_TYPE, STRING_TYPE, STRING_TYPE],
        replace_all,
    )?;
    env.add_overload(
        "regex.replace",
        "regex_replace_string_string_string_int",
        vec![STRING_TYPE, STRING_TYPE, STRING_TYPE, INT_TYPE],
        replace_n,
    )?;
    env.add_overload(
        "regex.extract",
        "regex_extract_string_string",
        vec![STRING_TYPE, STRING_TYPE],
        extract,
    )?;
    env.add_overload(
        "regex.extractAll",
        "regex_extractAll_string_string",
        vec![STRING_TYPE, STRING_TYPE],
        extract_all,
    )?;
    Ok(())
}

fn replace_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    replace(&args, -1)
}

fn replace_n<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let count = *arg::<CelInt>("regex.replace", &args, 3)?.inner();
    replace(&args, count)
}

/// Replaces the first `count` matches (all when negative), expanding `\N`
/// group references and `\\` in the replacement, as cel-go does.
fn replace<'b, 'v>(args: &[CowVal<'_, 'v>], count: i64) -> FnResult<'b, 'v> {
    const F: &str = "regex.replace";
    let target = arg::<CelString>(F, args, 0)?.inner();
    let pattern = arg::<CelString>(F, args, 1)?.inner();
    let replacement = arg::<CelString>(F, args, 2)?.inner();
    if count == 0 {
        return Ok(CowVal::owned(CelString::from(target.to_owned())));
    }
    let re = compiled(F, pattern)?;
    let groups = re.captures_len() - 1;
    let mut out = String::with_capacity(target.len());
    let mut last = 0;
    for (done, caps) in re.captures_iter(target).enumerate() {
        if count >= 0 && done as i64 >= count {
            break;
        }
        let Some(whole) = caps.get(0) else { continue };
        let expanded = expand(replacement, groups, &caps)?;
        out.push_str(&target[last..whole.start()]);
        out.push_str(&expanded);
        last = whole.end();
    }
    out.push_str(&target[last..]);
    Ok(CowVal::owned(CelString::from(out)))
}

/// The replacement text for one match.
fn expand(
    replacement: &str,
    groups: usize,
    caps: &regex::Captures<'_>,
) -> Result<String, ExecutionError> {
    const F: &str = "regex.replace";
    let mut out = String::new();
    let mut chars = replacement.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(next) = chars.next() else {
            return Err(fn_error(
                F,
                format!("invalid replacement string: '{replacement}' \\ not allowed at end"),
            ));
        };
        if next == '\\' {
            out.push('\\');
            continue;
        }
        let Some(group) = next.to_digit(10) else {
            return Err(fn_error(
                F,
                format!(
                    "invalid replacement string: '{replacement}' \\ must be followed by a digit or \\"
                ),
            ));
        };
        let group = group as usize;
        if group > groups {
            return Err(fn_error(
                F,
                format!(
                    "replacement string references group {group} but regex has only {groups} group(s)"
                ),
            ));
        }
        if let Some(m) = caps.get(group) {
            out.push_str(m.as_str());
        }
    }
    Ok(out)
}

/// The compiled pattern of an extract function, checked to have at most one
/// capturing group.
fn extract_pattern(function: &str, pattern: &str) -> Result<(Arc<Regex>, usize), ExecutionError> {
    let re = compiled(function, pattern)?;
    let groups = re.captures_len() - 1;
    if groups > 1 {
        return Err(fn_error(
            function,
            format!("regular expression has more than one capturing group: {pattern:?}"),
        ));
    }
    Ok((re, groups))
}

/// The first match (or its capturing group) as an optional string.
fn extract<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    const F: &str = "regex.extract";
    let target = arg::<CelString>(F, &args, 0)?.inner();
    let pattern = arg::<CelString>(F, &args, 1)?.inner();
    let (re, groups) = extract_pattern(F, pattern)?;
    let found = re.captures(target).and_then(|caps| {
        if groups == 1 {
            caps.get(1)
                .map(|m| m.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        } else {
            caps.get(0).map(|m| m.as_str().to_owned())
        }
    });
    let optional = match found {
        Some(s) => CelOptional::of(Box::new(CelString::from(s)) as Box<dyn Val + 'v>),
        None => CelOptional::none(),
    };
    Ok(CowVal::owned(optional))
}

/// Every match (or its non-empty capturing group), in order.
fn extract_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    const F: &str = "regex.extractAll";
    let target = arg::<CelString>(F, &args, 0)?.inner();
    let pattern = arg::<CelString>(F, &args, 1)?.inner();
    let (re, groups) = extract_pattern(F, pattern)?;
    let mut items: Vec<Box<dyn Val + 'v>> = Vec::new();
    for caps in re.captures_iter(target) {
        let text = if groups == 1 {
            match caps.get(1).map(|m| m.as_str()) {
                Some(s) if !s.is_empty() => s,
                _ => continue,
            }
        } else {
            match caps.get(0) {
                Some(m) => m.as_str(),
                None => continue,
            }
        };
        items.push(Box::new(CelString::from(text.to_owned())));
    }
    Ok(owned_list(items))
}
