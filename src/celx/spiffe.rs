//! Cerbos's SPIFFE functions: SPIFFE IDs, trust domains and matchers, with
//! the parsing rules of `go-spiffe`'s `spiffeid` package.
//!
//! ```text
//! spiffeID("spiffe://example.org/ns/prod").trustDomain() == spiffeTrustDomain("example.org")
//! spiffeMatchTrustDomain("example.org").matchesID("spiffe://example.org/a")
//! ```

use super::util::{arg, fn_error, list_items, take_args, FnResult};
use cel::common::traits::Comparer;
use cel::common::types::{CelBool, CelString, Type, LIST_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use std::any::Any;
use std::cmp::Ordering;

/// The type of SPIFFE IDs.
pub(crate) static SPIFFE_ID_TYPE: Type = Type::new_unspecified_type("cerbos.lib.spiffeID");
/// The type of SPIFFE trust domains.
pub(crate) static TRUST_DOMAIN_TYPE: Type =
    Type::new_unspecified_type("cerbos.lib.spiffeTrustDomain");
/// The type of SPIFFE ID matchers.
pub(crate) static MATCHER_TYPE: Type = Type::new_unspecified_type("cerbos.lib.spiffeMatcher");

const SCHEME: &str = "spiffe://";

/// Why a SPIFFE ID or trust domain does not parse; the messages are
/// `go-spiffe`'s.
fn parse_error(function: &str, what: &str, reason: &str) -> ExecutionError {
    fn_error(function, format!("failed to parse {what}: {reason}"))
}

fn is_trust_domain_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'.' | b'_')
}

fn is_path_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_')
}

/// Checks a SPIFFE ID path: empty, or `/`-separated segments that are
/// neither empty nor `.`/`..`, of the allowed characters.
fn validate_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Ok(());
    }
    if !path.starts_with('/') {
        return Err("path must have a leading slash");
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            return Err(if i == last {
                "path cannot have a trailing slash"
            } else {
                "path cannot contain empty segments"
            });
        }
        if *segment == "." || *segment == ".." {
            return Err("path cannot contain dot segments");
        }
        if !segment.bytes().all(is_path_char) {
            return Err(
                "path segment characters are limited to letters, numbers, dots, dashes, and underscores",
            );
        }
    }
    Ok(())
}

/// A SPIFFE ID: `spiffe://<trust domain><path>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SpiffeId {
    id: String,
    path_start: usize,
}

impl SpiffeId {
    /// Parses `id` as `spiffeid.FromString` does.
    fn parse(id: &str) -> Result<SpiffeId, &'static str> {
        if id.is_empty() {
            return Err("cannot be empty");
        }
        let Some(rest) = id.strip_prefix(SCHEME) else {
            return Err("scheme is missing or invalid");
        };
        let (trust_domain, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !trust_domain.bytes().all(is_trust_domain_char) {
            return Err(
                "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores",
            );
        }
        if trust_domain.is_empty() {
            return Err("trust domain is missing");
        }
        validate_path(path)?;
        Ok(SpiffeId {
            id: id.to_owned(),
            path_start: SCHEME.len() + trust_domain.len(),
        })
    }

    fn trust_domain(&self) -> TrustDomain {
        TrustDomain {
            name: self.id[SCHEME.len()..self.path_start].to_owned(),
        }
    }

    fn path(&self) -> &str {
        &self.id[self.path_start..]
    }
}

/// A SPIFFE trust domain, such as `example.org`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TrustDomain {
    name: String,
}

impl TrustDomain {
    /// Parses a trust domain name, or the trust domain of a SPIFFE ID, as
    /// `spiffeid.TrustDomainFromString` does.
    fn parse(id_or_name: &str) -> Result<TrustDomain, &'static str> {
        if id_or_name.is_empty() {
            return Err("trust domain is missing");
        }
        if id_or_name.contains(":/") {
            return SpiffeId::parse(id_or_name).map(|id| id.trust_domain());
        }
        if !id_or_name.bytes().all(is_trust_domain_char) {
            return Err(
                "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores",
            );
        }
        Ok(TrustDomain {
            name: id_or_name.to_owned(),
        })
    }
}

/// What a matcher accepts.
#[derive(Clone, Debug)]
pub(crate) enum Matcher {
    Any,
    Exact(SpiffeId),
    OneOf(Vec<SpiffeId>),
    MemberOf(TrustDomain),
}

impl Matcher {
    fn matches(&self, id: &SpiffeId) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::Exact(want) => want.id == id.id,
            Matcher::OneOf(ids) => ids.iter().any(|want| want.id == id.id),
            Matcher::MemberOf(td) => id.trust_domain() == *td,
        }
    }
}

macro_rules! static_val {
    ($ty:ty, $cel:expr, $eq:expr) => {
        impl Val for $ty {
            fn get_type(&self) -> &Type {
                &$cel
            }

            fn cel_type() -> &'static Type {
                &$cel
            }

            fn equals(&self, other: &dyn Val) -> bool {
                let eq: fn(&$ty, &dyn Val) -> bool = $eq;
                eq(self, other)
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

            fn as_comparer(&self) -> Option<&dyn Comparer> {
                <$ty as MaybeComparer>::comparer(self)
            }
        }

        impl StaticVal for $ty {}
    };
}

/// Which of these types compare with `<`: only trust domains.
trait MaybeComparer {
    fn comparer(&self) -> Option<&dyn Comparer> {
        None
    }
}

impl MaybeComparer for SpiffeId {}
impl MaybeComparer for Matcher {}
impl MaybeComparer for TrustDomain {
    fn comparer(&self) -> Option<&dyn Comparer> {
        Some(self)
    }
}

static_val!(SpiffeId, SPIFFE_ID_TYPE, |this, other| {
    if let Some(o) = other.downcast_ref::<SpiffeId>() {
        return o.id == this.id;
    }
    other
        .downcast_ref::<CelString>()
        .is_some_and(|s| s.inner() == this.id)
});

static_val!(TrustDomain, TRUST_DOMAIN_TYPE, |this, other| {
    if let Some(o) = other.downcast_ref::<TrustDomain>() {
        return o == this;
    }
    other
        .downcast_ref::<CelString>()
        .and_then(|s| TrustDomain::parse(s.inner()).ok())
        .is_some_and(|td| td == *this)
});

static_val!(Matcher, MATCHER_TYPE, |_, _| false);

impl Comparer for TrustDomain {
    /// Mirrors Cerbos, whose `Compare` compares the *other* trust domain to
    /// this one, so the ordering is the reverse of the names'.
    fn compare(&self, rhs: &dyn Val) -> Result<Ordering, ExecutionError> {
        let other = if let Some(td) = rhs.downcast_ref::<TrustDomain>() {
            td.clone()
        } else if let Some(s) = rhs.downcast_ref::<CelString>() {
            TrustDomain::parse(s.inner()).map_err(|e| parse_error("compare", "trust domain", e))?
        } else {
            return Err(ExecutionError::UnexpectedType {
                got: rhs.get_type().name().to_owned(),
                want: TRUST_DOMAIN_TYPE.name().to_owned(),
            });
        };
        Ok(other.name.cmp(&self.name))
    }
}

/// Registers the SPIFFE functions and methods.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    let id = || SPIFFE_ID_TYPE.to_owned();
    let td = || TRUST_DOMAIN_TYPE.to_owned();
    let matcher = || MATCHER_TYPE.to_owned();
    env.add_type(id())?;
    env.add_type(td())?;
    env.add_type(matcher())?;

    env.add_overload("spiffeID", "spiffeID_string", vec![STRING_TYPE], spiffe_id)?;
    env.add_overload("spiffeID", "spiffeID_spiffeID", vec![id()], spiffe_id)?;
    env.add_overload(
        "spiffeTrustDomain",
        "spiffeTrustDomain_string",
        vec![STRING_TYPE],
        trust_domain,
    )?;
    env.add_overload(
        "spiffeTrustDomain",
        "spiffeTrustDomain_spiffeID",
        vec![id()],
        trust_domain,
    )?;
    env.add_overload(
        "spiffeTrustDomain",
        "spiffeTrustDomain_spiffeTrustDomain",
        vec![td()],
        trust_domain,
    )?;
    env.add_overload("spiffeMatchAny", "spiffeMatchAny", vec![], match_any)?;
    env.add_overload(
        "spiffeMatchExact",
        "spiffeMatchExact_spiffeID",
        vec![id()],
        match_exact,
    )?;
    env.add_overload(
        "spiffeMatchExact",
        "spiffeMatchExact_string",
        vec![STRING_TYPE],
        match_exact,
    )?;
    env.add_overload(
        "spiffeMatchOneOf",
        "spiffeMatchOneOf_list",
        vec![LIST_TYPE],
        match_one_of,
    )?;
    env.add_overload(
        "spiffeMatchTrustDomain",
        "spiffeMatchTrustDomain_spiffeTrustDomain",
        vec![td()],
        match_trust_domain,
    )?;
    env.add_overload(
        "spiffeMatchTrustDomain",
        "spiffeMatchTrustDomain_string",
        vec![STRING_TYPE],
        match_trust_domain,
    )?;

    env.add_member_overload("isMemberOf", "isMemberOf", id(), vec![td()], is_member_of)?;
    env.add_member_overload("path", "path", id(), vec![], path)?;
    env.add_member_overload("trustDomain", "trustDomain", id(), vec![], trust_domain)?;
    env.add_member_overload("id", "id_trust_domain", td(), vec![], td_id)?;
    env.add_member_overload("name", "name", td(), vec![], td_name)?;
    env.add_member_overload(
        "matchesID",
        "matchesID_spiffeID",
        matcher(),
        vec![id()],
        matches_id,
    )?;
    env.add_member_overload(
        "matchesID",
        "matchesID_string",
        matcher(),
        vec![STRING_TYPE],
        matches_id,
    )?;
    env.add_overload("string", "spiffeID_to_string", vec![id()], to_string)?;
    env.add_overload(
        "string",
        "spiffeTrustDomain_to_string",
        vec![td()],
        to_string,
    )?;
    Ok(())
}

/// A SPIFFE ID from a string or an ID.
fn id_of(function: &str, v: &dyn Val) -> Result<SpiffeId, ExecutionError> {
    if let Some(id) = v.downcast_ref::<SpiffeId>() {
        return Ok(id.clone());
    }
    match v.downcast_ref::<CelString>() {
        Some(s) => SpiffeId::parse(s.inner()).map_err(|e| parse_error(function, "SPIFFE ID", e)),
        None => Err(ExecutionError::no_such_overload(
            function,
            vec![v.get_type().name().to_owned()],
        )),
    }
}

/// A trust domain from a string, an ID or a trust domain.
fn trust_domain_of(function: &str, v: &dyn Val) -> Result<TrustDomain, ExecutionError> {
    if let Some(td) = v.downcast_ref::<TrustDomain>() {
        return Ok(td.clone());
    }
    if let Some(id) = v.downcast_ref::<SpiffeId>() {
        return Ok(id.trust_domain());
    }
    match v.downcast_ref::<CelString>() {
        Some(s) => TrustDomain::parse(s.inner())
            .map_err(|e| parse_error(function, "SPIFFE trust domain", e)),
        None => Err(ExecutionError::no_such_overload(
            function,
            vec![v.get_type().name().to_owned()],
        )),
    }
}

fn spiffe_id<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [v] = take_args(args)?;
    Ok(CowVal::owned(id_of("spiffeID", v.as_ref())?))
}

fn trust_domain<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [v] = take_args(args)?;
    Ok(CowVal::owned(trust_domain_of(
        "spiffeTrustDomain",
        v.as_ref(),
    )?))
}

fn match_any<'b, 'v>(_args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    Ok(CowVal::owned(Matcher::Any))
}

fn match_exact<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [v] = take_args(args)?;
    Ok(CowVal::owned(Matcher::Exact(id_of(
        "spiffeMatchExact",
        v.as_ref(),
    )?)))
}

/// A list of SPIFFE IDs, or of strings that all parse as SPIFFE IDs.
fn match_one_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [list] = take_args(args)?;
    let items = list_items("spiffeMatchOneOf", list.as_ref())?;
    let ids: Option<Vec<SpiffeId>> = items
        .iter()
        .map(|item| item.downcast_ref::<SpiffeId>().cloned())
        .collect();
    if let Some(ids) = ids {
        return Ok(CowVal::owned(Matcher::OneOf(ids)));
    }
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let Some(s) = item.downcast_ref::<CelString>() else {
            return Err(fn_error(
                "spiffeMatchOneOf",
                "expected a list of SPIFFE IDs or of strings",
            ));
        };
        ids.push(
            SpiffeId::parse(s.inner())
                .map_err(|e| parse_error("spiffeMatchOneOf", "SPIFFE ID", e))?,
        );
    }
    Ok(CowVal::owned(Matcher::OneOf(ids)))
}

fn match_trust_domain<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [v] = take_args(args)?;
    Ok(CowVal::owned(Matcher::MemberOf(trust_domain_of(
        "spiffeMatchTrustDomain",
        v.as_ref(),
    )?)))
}

fn is_member_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let id = arg::<SpiffeId>("isMemberOf", &args, 0)?;
    let td = arg::<TrustDomain>("isMemberOf", &args, 1)?;
    Ok(CowVal::owned(CelBool::from(id.trust_domain() == *td)))
}

fn path<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let id = arg::<SpiffeId>("path", &args, 0)?;
    Ok(CowVal::owned(CelString::from(id.path().to_owned())))
}

fn td_id<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let td = arg::<TrustDomain>("id", &args, 0)?;
    Ok(CowVal::owned(CelString::from(format!(
        "{SCHEME}{}",
        td.name
    ))))
}

fn td_name<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let td = arg::<TrustDomain>("name", &args, 0)?;
    Ok(CowVal::owned(CelString::from(td.name.clone())))
}

fn matches_id<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let matcher = arg::<Matcher>("matchesID", &args, 0)?;
    let id = match args.get(1) {
        Some(v) => id_of("matchesID", v.as_ref())?,
        None => return Err(ExecutionError::invalid_argument_count(2, args.len())),
    };
    Ok(CowVal::owned(CelBool::from(matcher.matches(&id))))
}

fn to_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [v] = take_args(args)?;
    let s = if let Some(id) = v.downcast_ref::<SpiffeId>() {
        id.id.clone()
    } else if let Some(td) = v.downcast_ref::<TrustDomain>() {
        td.name.clone()
    } else {
        return Err(ExecutionError::no_such_overload(
            "string",
            vec![v.get_type().name().to_owned()],
        ));
    };
    Ok(CowVal::owned(CelString::from(s)))
}
