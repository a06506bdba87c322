//! Engine behaviours settled against the Cerbos 0.55 binary with
//! `scripts/diff_vs_cerbos.py` and `scripts/diff_one.py`.

use super::*;
use crate::compile::{compile, EngineSettings, RuleIndex};
use crate::config::SchemaEnforcement;
use crate::store::StoreFile;

fn index_with(files: &[(&str, &str)], settings: EngineSettings) -> RuleIndex {
    let (policies, schemas): (Vec<_>, Vec<_>) = files
        .iter()
        .map(|(name, text)| StoreFile {
            name: name.to_string(),
            bytes: text.as_bytes().to_vec(),
        })
        .partition(|f| !f.name.starts_with("_schemas/"));
    let schemas: Vec<StoreFile> = schemas
        .into_iter()
        .map(|f| StoreFile {
            name: f.name.trim_start_matches("_schemas/").to_string(),
            bytes: f.bytes,
        })
        .collect();
    let (parsed, errors) = crate::policy::parse_set(&policies);
    assert!(errors.is_empty(), "{errors:?}");
    compile(&parsed, &schemas, settings).expect("compiles")
}

fn index(files: &[(&str, &str)]) -> RuleIndex {
    index_with(files, EngineSettings::default())
}

fn principal(id: &str, roles: &[&str]) -> Principal {
    Principal {
        id: id.to_string(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..Principal::default()
    }
}

fn one(
    index: &RuleIndex,
    principal: &Principal,
    kind: &str,
    scope: &str,
    attr: serde_json::Value,
    actions: &[&str],
) -> CheckResult {
    let resource = Resource {
        kind: kind.to_string(),
        id: "1".to_string(),
        scope: scope.to_string(),
        attr: attr.as_object().cloned().unwrap_or_default(),
        ..Resource::default()
    };
    check_one(index, principal, resource, actions)
}

fn check_one(
    index: &RuleIndex,
    principal: &Principal,
    resource: Resource,
    actions: &[&str],
) -> CheckResult {
    let checks = [ResourceCheck {
        resource,
        actions: actions.iter().map(|a| a.to_string()).collect(),
    }];
    let now = chrono::Utc::now().fixed_offset();
    check(index, principal, None, &checks, now).remove(0)
}

fn decided(result: &CheckResult, action: &str) -> (Effect, String, String) {
    let a = result
        .actions
        .iter()
        .find(|a| a.action == action)
        .expect("asked");
    (a.effect, a.policy.clone(), a.scope.clone())
}

const ROLE_RR_DOC_VIEW: &str = "
apiVersion: api.cerbos.dev/v1
rolePolicy:
  role: rr
  rules:
    - resource: doc
      allowActions: [view]
";

fn resource_policy(kind: &str, rule: &str) -> String {
    format!(
        "
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: {kind}
  version: default
  rules:
    - actions: [view, edit]
      effect: EFFECT_ALLOW
      {rule}
"
    )
}

#[test]
fn role_policy_denies_only_kinds_with_rules_for_its_roles() {
    // The role policy names only `doc`; `named` has a rule for the role,
    // `others` only for another role.
    let named = resource_policy("named", "roles: [rr]");
    let others = resource_policy("others", "roles: [user]");
    let idx = index(&[
        ("role.yaml", ROLE_RR_DOC_VIEW),
        ("named.yaml", &named),
        ("others.yaml", &others),
    ]);
    let p = principal("bob", &["rr"]);

    let r = one(&idx, &p, "named", "", serde_json::json!({}), &["view"]);
    assert_eq!(
        decided(&r, "view"),
        (Effect::Deny, "role.rr.vdefault".into(), String::new())
    );

    // No rule for `rr` on `others`: the resource policy decides (no match).
    let r = one(&idx, &p, "others", "", serde_json::json!({}), &["view"]);
    assert_eq!(
        decided(&r, "view"),
        (
            Effect::Deny,
            "resource.others.vdefault".into(),
            String::new()
        )
    );

    // No rule at all for the kind: nothing decides.
    let r = one(&idx, &p, "unknown", "", serde_json::json!({}), &["view"]);
    assert_eq!(
        decided(&r, "view"),
        (Effect::Deny, NO_MATCH.into(), String::new())
    );

    // The kind the role policy lists: its actions pass through, others are denied.
    let doc = resource_policy("doc", "roles: [rr]");
    let idx = index(&[("role.yaml", ROLE_RR_DOC_VIEW), ("doc.yaml", &doc)]);
    let r = one(
        &idx,
        &p,
        "doc",
        "",
        serde_json::json!({}),
        &["view", "edit"],
    );
    assert_eq!(decided(&r, "view").0, Effect::Allow);
    assert_eq!(
        decided(&r, "edit"),
        (Effect::Deny, "role.rr.vdefault".into(), String::new())
    );
}

#[test]
fn role_policy_denial_counts_rules_for_parent_roles() {
    let role = "
apiVersion: api.cerbos.dev/v1
rolePolicy:
  role: rr
  scope: a
  parentRoles: [user]
  rules:
    - resource: doc
      allowActions: [view]
";
    let other = resource_policy("other", "roles: [user]");
    let other_a = other.replace("version: default", "version: default\n  scope: a");
    let idx = index(&[
        ("role.yaml", role),
        ("other.yaml", &other),
        ("other_a.yaml", &other_a),
    ]);
    let r = one(
        &idx,
        &principal("bob", &["rr"]),
        "other",
        "a",
        serde_json::json!({}),
        &["view"],
    );
    assert_eq!(
        decided(&r, "view"),
        (Effect::Deny, "role.rr.vdefault/a".into(), "a".into())
    );
}

/// Cerbos finds a principal policy by the principal's version but reads
/// its rules at the resource's version: a `v1` principal policy decides
/// only for `v1` resources, whatever the principal's version, and names
/// itself only when the principal asked for `v1` too.
#[test]
fn principal_rules_are_read_at_the_resource_version() {
    let principal_policy = "
apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: alice
  version: v1
  rules:
    - resource: doc
      actions: [{action: view, effect: EFFECT_ALLOW}]
";
    let edit_for_users = |version: &str| {
        format!(
            "
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: {version}
  rules:
    - actions: [edit]
      effect: EFFECT_ALLOW
      roles: [user]
"
        )
    };
    let (default, v1) = (edit_for_users("default"), edit_for_users("v1"));
    let idx = index(&[
        ("p.yaml", principal_policy),
        ("r.yaml", &default),
        ("r1.yaml", &v1),
    ]);
    let cases = [
        ("v1", "default", Effect::Deny, "resource.doc.vdefault"),
        ("v1", "v1", Effect::Allow, "principal.alice.vv1"),
        ("default", "default", Effect::Deny, "resource.doc.vdefault"),
        ("default", "v1", Effect::Allow, NO_MATCH),
    ];
    for (principal_version, resource_version, effect, policy) in cases {
        let p = Principal {
            policy_version: principal_version.to_string(),
            ..principal("alice", &["user"])
        };
        let resource = Resource {
            kind: "doc".to_string(),
            id: "1".to_string(),
            policy_version: resource_version.to_string(),
            ..Resource::default()
        };
        let result = check_one(&idx, &p, resource, &["view"]);
        let (got_effect, got_policy, _) = decided(&result, "view");
        assert_eq!(
            (got_effect, got_policy.as_str()),
            (effect, policy),
            "principal {principal_version}, resource {resource_version}"
        );
    }
}

#[test]
fn principal_rules_match_the_sanitized_kind() {
    let policy = "
apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: frodo
  version: default
  rules:
    - resource: the:one:ring
      actions: [{action: cast, effect: EFFECT_ALLOW}]
    - resource: 'g:*'
      actions: [{action: cast, effect: EFFECT_ALLOW}]
";
    let idx = index(&[("p.yaml", policy)]);
    let p = principal("frodo", &["user"]);
    for kind in ["the:one:ring", "the_one_ring"] {
        let r = one(&idx, &p, kind, "", serde_json::json!({}), &["cast"]);
        assert_eq!(
            decided(&r, "cast"),
            (
                Effect::Allow,
                "principal.frodo.vdefault".into(),
                String::new()
            ),
            "{kind}"
        );
    }
    // A glob is not sanitized, while the request's kind is: no match.
    let r = one(&idx, &p, "g:foo", "", serde_json::json!({}), &["cast"]);
    assert_eq!(decided(&r, "cast").1, NO_MATCH);
}

#[test]
fn derived_role_variables_in_rules_see_the_scope_runtime() {
    // `empty` holds while the effective derived roles are worked out, and
    // no longer when the rule using `one` is evaluated.
    let roles = "
apiVersion: api.cerbos.dev/v1
derivedRoles:
  name: drs
  variables:
    local:
      empty: runtime.effectiveDerivedRoles == []
  definitions:
    - name: one
      parentRoles: [employee]
      condition:
        match:
          expr: V.empty
    - name: always
      parentRoles: [employee]
";
    let policy = "
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  importDerivedRoles: [drs]
  rules:
    - actions: [a1]
      effect: EFFECT_ALLOW
      derivedRoles: [one]
    - actions: [a2]
      effect: EFFECT_ALLOW
      derivedRoles: [always]
";
    let idx = index(&[("drs.yaml", roles), ("doc.yaml", policy)]);
    let r = one(
        &idx,
        &principal("u", &["employee"]),
        "doc",
        "",
        serde_json::json!({}),
        &["a1", "a2"],
    );
    assert_eq!(r.effective_derived_roles, ["always", "one"]);
    assert_eq!(decided(&r, "a1").0, Effect::Deny);
    assert_eq!(decided(&r, "a2").0, Effect::Allow);
}

#[test]
fn failed_outputs_carry_cel_go_errors() {
    let policy = r#"
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - name: div
      actions: [div]
      effect: EFFECT_ALLOW
      roles: [user]
      output:
        when:
          ruleActivated: 1 / 0
    - name: key
      actions: [key]
      effect: EFFECT_ALLOW
      roles: [user]
      output:
        when:
          ruleActivated: R.attr.missing
    - name: fine
      actions: [fine]
      effect: EFFECT_ALLOW
      roles: [user]
      output:
        when:
          ruleActivated: R.attr.n
"#;
    let idx = index(&[("doc.yaml", policy)]);
    let r = one(
        &idx,
        &principal("u", &["user"]),
        "doc",
        "",
        serde_json::json!({"n": 3}),
        &["div", "key", "fine"],
    );
    let by = |action: &str| {
        r.outputs
            .iter()
            .find(|o| o.action == action)
            .cloned()
            .expect("output")
    };
    assert_eq!(by("div").error.as_deref(), Some("division by zero"));
    assert_eq!(by("div").val, None);
    assert_eq!(by("key").error.as_deref(), Some("no such key: missing"));
    assert_eq!(by("fine").val, Some(serde_json::json!(3)));
    assert_eq!(by("fine").error, None);
}

#[test]
fn validation_errors_in_cerbos_words() {
    let schema = r#"{
      "type": "object",
      "required": ["zeta", "alpha"],
      "properties": {
        "zeta": {"type": "string"},
        "alpha": {"type": "string"},
        "en": {"type": "string", "enum": ["a", "b"]},
        "any": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "email": {"type": "string", "format": "email"},
        "multi": {"type": ["string", "null"]},
        "obj": {"type": "object", "required": ["inner", "other"]}
      }
    }"#;
    let policy = "
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  schemas:
    resourceSchema:
      ref: cerbos:///doc.json
  rules:
    - actions: [view]
      effect: EFFECT_ALLOW
      roles: [user]
";
    let settings = EngineSettings {
        schema_enforcement: SchemaEnforcement::Warn,
        ..EngineSettings::default()
    };
    let idx = index_with(
        &[("_schemas/doc.json", schema), ("doc.yaml", policy)],
        settings,
    );
    let r = one(
        &idx,
        &principal("u", &["user"]),
        "doc",
        "",
        serde_json::json!({"en": 5, "any": 2.5, "email": "bad", "obj": {}, "multi": 3}),
        &["view"],
    );
    let mut got: Vec<(String, String)> = r
        .validation_errors
        .iter()
        .map(|e| (e.path.clone(), e.message.clone()))
        .collect();
    got.sort();
    let want = [
        ("/", "missing properties: 'zeta', 'alpha'"),
        ("/any", "expected integer, but got number"),
        ("/any", "expected string, but got number"),
        ("/email", "'bad' is not valid 'email'"),
        // The enum is not reported when the type is already wrong.
        ("/en", "expected string, but got number"),
        // Types in the order the schema lists them.
        ("/multi", "expected string or null, but got number"),
        ("/obj", "missing properties: 'inner', 'other'"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    assert_eq!(got, want);
    // Warn: the decision is unchanged.
    assert_eq!(decided(&r, "view").0, Effect::Allow);
}

#[test]
fn unnamed_role_policy_rules_have_no_name_in_outputs() {
    let role = r#"
apiVersion: api.cerbos.dev/v1
rolePolicy:
  role: rr
  rules:
    - resource: doc
      allowActions: [view]
      condition:
        match:
          expr: R.attr.n == 1
      output:
        when:
          conditionNotMet: '"not met"'
"#;
    let doc = resource_policy("doc", "roles: [rr]");
    let idx = index(&[("role.yaml", role), ("doc.yaml", &doc)]);
    let r = one(
        &idx,
        &principal("u", &["rr"]),
        "doc",
        "",
        serde_json::json!({"n": 2}),
        &["view"],
    );
    assert_eq!(r.outputs.len(), 1);
    assert_eq!(r.outputs[0].src, "role.rr.vdefault#");
    assert_eq!(r.outputs[0].val, Some(serde_json::json!("not met")));
    assert_eq!(
        decided(&r, "view"),
        (Effect::Deny, "role.rr.vdefault".into(), String::new())
    );
}

/// `cel` sees every variable evaluated so far in `V`, including those
/// evaluated after an earlier expression already read `V`.
#[test]
fn cel_reads_variables_evaluated_after_an_earlier_read() {
    let index = index(&[(
        "doc.yaml",
        r#"
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  variables:
    local:
      first: R.attr.tags.exists(t, t == "a")
      second: R.attr.tags.exists(t, t == "b")
  rules:
    - actions: ["one"]
      effect: EFFECT_ALLOW
      roles: ["user"]
      condition:
        match:
          expr: V.first && [1].exists(x, x == 1)
      output:
        when:
          ruleActivated: V.first
    - actions: ["two"]
      effect: EFFECT_ALLOW
      roles: ["user"]
      condition:
        match:
          expr: V.second && [1].exists(x, x == 1)
      output:
        when:
          ruleActivated: '{"first": V.first, "second": V.second}'
"#,
    )]);
    let result = one(
        &index,
        &principal("alice", &["user"]),
        "doc",
        "",
        serde_json::json!({"tags": ["a", "b"]}),
        &["one", "two"],
    );
    assert_eq!(decided(&result, "one").0, Effect::Allow);
    assert_eq!(decided(&result, "two").0, Effect::Allow);
    let outputs: Vec<_> = result.outputs.iter().map(|o| o.val.clone()).collect();
    assert_eq!(
        outputs,
        [
            Some(serde_json::json!(true)),
            Some(serde_json::json!({"first": true, "second": true}))
        ]
    );
}
