//! Cerbos's names for policies and rules, as they appear in responses.
//!
//! Resource and principal names that follow Cerbos's pre-0.30 pattern have
//! their non-word characters replaced by `_` in policy keys (`my-doc` becomes
//! `my_doc`); Cerbos also indexes rules under that sanitized name, so two
//! kinds that sanitize to the same name share policies there too.

use std::borrow::Cow;

/// Replaces runs of characters other than word characters and `.` with `_`,
/// for names matching Cerbos's legacy pattern; other names are kept as they are.
pub fn sanitize(name: &str) -> Cow<'_, str> {
    // Checked first because every check sanitizes the request's names, and
    // nearly all of them are kept as they are.
    if name.chars().all(kept_in_policy_key) || !legacy_name(name) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if kept_in_policy_key(c) {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    Cow::Owned(out)
}

fn kept_in_policy_key(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// `^[[:alpha:]][[:word:]@.\-/]*(:[[:alpha:]][[:word:]@.\-/]*)*$`
fn legacy_name(name: &str) -> bool {
    !name.is_empty()
        && name.split(':').all(|segment| {
            let mut chars = segment.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '@' | '.' | '-' | '/'))
        })
}

/// `<type>.<name>.v<version>[/<scope>]`, built without `format!`: a check
/// builds these for every resource, and the formatting machinery is code a
/// cold invocation would otherwise fetch for them alone.
fn policy_key(policy_type: &str, name: &str, version: &str, scope: &str) -> String {
    let (name, version) = (sanitize(name), sanitize(version));
    let mut key =
        String::with_capacity(policy_type.len() + name.len() + version.len() + scope.len() + 4);
    for part in [policy_type, ".", &name, ".v", &version] {
        key.push_str(part);
    }
    if !scope.is_empty() {
        key.push('/');
        key.push_str(scope);
    }
    key
}

/// `resource.<kind>.v<version>[/<scope>]`
pub fn resource_policy_key(kind: &str, version: &str, scope: &str) -> String {
    policy_key("resource", kind, version, scope)
}

/// `principal.<id>.v<version>[/<scope>]`
pub fn principal_policy_key(id: &str, version: &str, scope: &str) -> String {
    policy_key("principal", id, version, scope)
}

/// `role.<role>.v<version>[/<scope>]`
pub fn role_policy_key(role: &str, version: &str, scope: &str) -> String {
    policy_key("role", role, version, scope)
}

/// The parent scopes of `scope`, nearest first, ending with the root (`""`).
pub fn scope_parents(scope: &str) -> impl Iterator<Item = &str> {
    let mut end = Some(scope.len());
    std::iter::from_fn(move || {
        let current = end?;
        if current == 0 {
            end = None;
            return None;
        }
        let parent_end = scope[..current].rfind('.').unwrap_or(0);
        end = Some(parent_end);
        Some(&scope[..parent_end])
    })
}

/// The name of the `index`-th (0-based) rule when it has none.
pub fn default_rule_name(index: usize) -> String {
    format!("rule-{:03}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            resource_policy_key("leave_request", "default", ""),
            "resource.leave_request.vdefault"
        );
        assert_eq!(
            resource_policy_key("leave_request", "20210210", "acme.hr"),
            "resource.leave_request.v20210210/acme.hr"
        );
        assert_eq!(
            principal_policy_key("donald_duck", "default", "acme"),
            "principal.donald_duck.vdefault/acme"
        );
        assert_eq!(
            role_policy_key("acme_creator", "default", "acme.hr.uk.brighton"),
            "role.acme_creator.vdefault/acme.hr.uk.brighton"
        );
    }

    #[test]
    fn legacy_names_are_sanitized() {
        assert_eq!(sanitize("my-doc"), "my_doc");
        assert_eq!(sanitize("app:document"), "app_document");
        assert_eq!(sanitize("a/b@c"), "a_b_c");
        assert_eq!(sanitize("already.fine_1"), "already.fine_1");
        // Names outside the legacy pattern are left alone.
        assert_eq!(sanitize("1st-doc"), "1st-doc");
        assert_eq!(sanitize("has space"), "has space");
    }

    #[test]
    fn parents_nearest_first() {
        assert_eq!(scope_parents("a.b.c").collect::<Vec<_>>(), ["a.b", "a", ""]);
        assert_eq!(scope_parents("a").collect::<Vec<_>>(), [""]);
        assert!(scope_parents("").next().is_none());
    }

    #[test]
    fn default_names() {
        assert_eq!(default_rule_name(0), "rule-001");
        assert_eq!(default_rule_name(11), "rule-012");
    }
}
