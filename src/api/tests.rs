use super::*;
use crate::compile::{compile, EngineSettings};
use crate::store::StoreFile;
use serde_json::{json, Value};

const POLICY: &str = r#"
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: document
  version: default
  rules:
    - actions: ["view"]
      roles: ["editor", "viewer"]
      effect: EFFECT_ALLOW
    - actions: ["edit"]
      roles: ["editor"]
      effect: EFFECT_ALLOW
      condition:
        match:
          expr: R.attr.owner == P.id
      output:
        when:
          conditionNotMet: '"not owner: " + P.id'
"#;

fn index() -> RuleIndex {
    let files = [StoreFile {
        name: "document.yaml".to_string(),
        bytes: POLICY.as_bytes().to_vec(),
    }];
    let (policies, errors) = crate::policy::parse_set(&files);
    assert!(errors.is_empty(), "{errors:?}");
    compile(&policies, &[], EngineSettings::default()).unwrap()
}

fn api() -> Api {
    Api::new(&Config::default()).unwrap()
}

fn now() -> DateTime<FixedOffset> {
    chrono::Utc::now().fixed_offset()
}

fn check_resources(body: Value) -> Result<Value, ApiError> {
    let checked = api().check_resources(&index(), body.to_string().as_bytes(), now())?;
    Ok(serde_json::from_slice(&checked.check_resources_json()?).unwrap())
}

fn request(principal: Value, resources: Value) -> Value {
    json!({"requestId": "r1", "principal": principal, "resources": resources})
}

fn alice() -> Value {
    json!({"id": "alice", "roles": ["editor"]})
}

fn doc(actions: &[&str], owner: &str) -> Value {
    json!([{"actions": actions, "resource": {"kind": "document", "id": "1", "attr": {"owner": owner}}}])
}

#[test]
fn cerbos_response_shape() {
    let mut body = request(alice(), doc(&["view", "edit"], "bob"));
    body["includeMeta"] = json!(true);
    let response = check_resources(body).unwrap();
    assert_eq!(response["requestId"], "r1");
    assert!(response["cerbosCallId"].as_str().unwrap().len() == 26);
    let result = &response["results"][0];
    assert_eq!(result["resource"], json!({"id": "1", "kind": "document"}));
    assert_eq!(
        result["actions"],
        json!({"edit": "EFFECT_DENY", "view": "EFFECT_ALLOW"})
    );
    assert_eq!(
        result["meta"]["actions"]["view"],
        json!({"matchedPolicy": "resource.document.vdefault"})
    );
    assert_eq!(
        result["outputs"],
        json!([{"src": "resource.document.vdefault#rule-002", "val": "not owner: alice", "action": "edit"}])
    );
    // Keys are sorted like Cerbos's, and nothing empty is rendered.
    let text = serde_json::to_string(&response["results"][0]["actions"]).unwrap();
    assert!(text.find("edit") < text.find("view"));
    assert!(result.get("validationErrors").is_none());
}

#[test]
fn meta_only_when_asked_and_proto_names_accepted() {
    let body = json!({
        "request_id": "r2",
        "principal": {"id": "alice", "roles": ["editor"], "policy_version": "default"},
        "resources": [{"actions": ["view"], "resource": {"kind": "document", "id": "1", "policy_version": "default"}}],
        "include_meta": false
    });
    let response = check_resources(body).unwrap();
    assert_eq!(response["requestId"], "r2");
    assert!(response["results"][0].get("meta").is_none());
    assert_eq!(
        response["results"][0]["resource"]["policyVersion"],
        "default"
    );
}

#[test]
fn single_resource_form_takes_attributes() {
    let body = json!({
        "requestId": "test",
        "actions": ["view", "edit"],
        "resource": {"kind": "document", "policyVersion": "default", "id": "1", "attributes": {"owner": "alice"}},
        "principal": {"id": "alice", "roles": ["editor"], "attributes": {}}
    });
    let checked = api()
        .check(&index(), body.to_string().as_bytes(), now())
        .unwrap();
    let response: Value = serde_json::from_slice(&checked.check_json().unwrap()).unwrap();
    assert_eq!(response["requestId"], "test");
    assert_eq!(response["resourceId"], "1");
    assert_eq!(
        response["actions"],
        json!({"edit": "EFFECT_ALLOW", "view": "EFFECT_ALLOW"})
    );
}

fn error(body: &[u8]) -> ApiError {
    api().check_resources(&index(), body, now()).unwrap_err()
}

fn error_json(body: Value) -> ApiError {
    error(body.to_string().as_bytes())
}

#[test]
fn a_body_cut_inside_an_object_names_that_object() {
    let e = error(b"{");
    assert!(e.message.starts_with("invalid JSON: EOF"), "{}", e.message);
    let e = error(br#"{"principal": {"id": "a","#);
    assert!(
        e.message.starts_with("invalid JSON at principal: EOF"),
        "{}",
        e.message
    );
}

#[test]
fn a_body_that_is_json_but_not_an_object_is_refused_as_such() {
    for body in [
        &b"[]"[..],
        b"5",
        b"\"check\"",
        b" null ",
        b"[{\"principal\": {}}]",
    ] {
        let e = error(body);
        assert_eq!(e.http_status(), 400);
        assert_eq!(
            e.message,
            "invalid JSON: the request must be a JSON object",
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn malformed_json_is_400() {
    let e = error(br#"{"principal": {"id": "a""#);
    assert_eq!(e.http_status(), 400);
    assert!(e.message.starts_with("invalid JSON"), "{}", e.message);
    assert_eq!(
        error(b"").message,
        "request body is empty: expected a JSON object"
    );
    assert!(
        error(b"{} trailing").message.contains("trailing"),
        "{}",
        error(b"{} trailing").message
    );
}

#[test]
fn wrong_types_name_the_field() {
    let e = error_json(json!({"principal": {"id": "a", "roles": "editor"}, "resources": []}));
    assert!(e.message.contains("principal.roles"), "{}", e.message);
    let e = error_json(request(
        json!({"id": 7, "roles": ["x"]}),
        doc(&["view"], "a"),
    ));
    assert!(e.message.contains("principal.id"), "{}", e.message);
    let e = error_json(request(
        json!({"id": "a", "roles": ["x"], "attr": [1]}),
        doc(&["view"], "a"),
    ));
    assert!(e.message.contains("principal.attr"), "{}", e.message);
}

#[test]
fn unknown_fields_are_refused() {
    let mut body = request(alice(), doc(&["view"], "a"));
    body["extra"] = json!(1);
    let e = error_json(body);
    assert!(e.message.contains("unknown field `extra`"), "{}", e.message);
}

#[test]
fn missing_parts_are_named() {
    let e = error_json(json!({}));
    assert_eq!(
        e.message,
        "validation errors:\n - principal: value is required\n - resources: value is required"
    );
    let e = error_json(request(
        json!({"id": "", "roles": []}),
        json!([{"actions": [], "resource": {"kind": "", "id": ""}}]),
    ));
    for field in [
        "principal.id: value is required",
        "principal.roles: value is required",
        "resources[0].resource.kind: value is required",
        "resources[0].resource.id: value is required",
        "resources[0].actions: value is required",
    ] {
        assert!(e.message.contains(field), "{field} in {}", e.message);
    }
    let e = error_json(request(alice(), json!([{"actions": ["view"]}])));
    assert_eq!(
        e.message,
        "validation error: resources[0].resource: value is required"
    );
}

#[test]
fn repeated_roles_and_actions_are_refused() {
    let e = error_json(request(
        json!({"id": "alice", "roles": ["editor", "viewer", "editor"]}),
        doc(&["view"], "a"),
    ));
    assert_eq!(
        e.message,
        "validation error: principal.roles: repeated value must contain unique items"
    );
    // Longer lists than the pairwise check covers.
    let mut actions: Vec<String> = (0..20).map(|i| format!("a{i}")).collect();
    let refs: Vec<&str> = actions.iter().map(String::as_str).collect();
    let mut resources = doc(&refs, "a");
    actions.push("a0".to_string());
    let refs: Vec<&str> = actions.iter().map(String::as_str).collect();
    let second = doc(&refs, "a")[0].clone();
    resources.as_array_mut().unwrap().push(second);
    let e = error_json(request(alice(), resources));
    assert_eq!(
        e.message,
        "validation error: resources[1].actions: repeated value must contain unique items"
    );
}

#[test]
fn limits_are_enforced() {
    let actions: Vec<String> = (0..51).map(|i| format!("a{i}")).collect();
    let refs: Vec<&str> = actions.iter().map(String::as_str).collect();
    let e = error_json(request(alice(), doc(&refs, "a")));
    assert!(e.message.contains("no more than 50"), "{}", e.message);
    let many: Vec<Value> = (0..51)
        .map(
            |i| json!({"actions": ["view"], "resource": {"kind": "document", "id": i.to_string()}}),
        )
        .collect();
    let e = error_json(request(alice(), Value::Array(many)));
    assert!(
        e.message
            .contains("resources: value must contain no more than 50"),
        "{}",
        e.message
    );
    let e = error_json(request(alice(), doc(&["view", "view"], "a")));
    assert!(e.message.contains("unique"), "{}", e.message);
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!(
        r#"{{"principal": {{"id": "a", "roles": ["x"], "attr": {{"x": {}1{}}}}}, "resources": []}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let e = error(deep.as_bytes());
    assert_eq!(e.http_status(), 400);
    assert!(e.message.contains("recursion limit"), "{}", e.message);
}

#[test]
fn bad_versions_and_scopes() {
    let e = error_json(request(
        json!({"id": "a", "roles": ["x"], "policyVersion": "1.0", "scope": "a..b"}),
        doc(&["view"], "a"),
    ));
    assert!(
        e.message.contains("principal.policy_version"),
        "{}",
        e.message
    );
    assert!(e.message.contains("principal.scope"), "{}", e.message);
    assert!(valid_request_scope("acme.hr-uk.x_1"));
    assert!(valid_request_scope("."));
    assert!(!valid_request_scope("-acme"));
}

#[test]
fn jwt_without_key_sets_is_refused_not_ignored() {
    let mut body = request(alice(), doc(&["view"], "a"));
    body["auxData"] = json!({"jwt": {"token": "a.b.c"}});
    let e = error_json(body);
    assert_eq!(e.http_status(), 400);
}

#[test]
fn unknown_kinds_deny() {
    let body = request(
        alice(),
        json!([{"actions": ["view"], "resource": {"kind": "spaceship", "id": "1"}}]),
    );
    let response = check_resources(body).unwrap();
    assert_eq!(response["results"][0]["actions"]["view"], "EFFECT_DENY");
}
