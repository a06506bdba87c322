//! The Lambda handler in-process: real gateway event JSON in, the JSON the
//! function returns to the gateway out.
//!
//! Fixtures under `tests/fixtures/events/` are events as API Gateway REST
//! (with the `prod` stage), HTTP API, Function URLs and ALB target groups
//! send them; error cases are derived from them by changing the method,
//! path, headers or body. Policies: `tests/fixtures/policies/`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};
use tracing::Instrument;
use verdict::config::Config;
use verdict::lambda::logging::JsonLines;
use verdict::lambda::{Handler, HandlerError, MAX_BODY_BYTES};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(name: &str) -> Value {
    let path = fixtures().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn config(extra: &str) -> Config {
    let yaml = format!(
        "storage:\n  driver: disk\n  disk:\n    directory: {}\n{extra}",
        fixtures().join("policies").display()
    );
    Config::from_yaml("test-config.yaml", &yaml, &|_| None).unwrap()
}

async fn handler_with(extra: &str) -> Handler {
    Handler::open(&config(extra)).await.unwrap().0
}

async fn handler() -> Handler {
    handler_with("").await
}

/// The gateway's view of a response.
#[derive(Debug)]
struct Reply {
    raw: Value,
    status: u64,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn assert_error(&self, status: u64, code: u64) -> &str {
        assert_eq!(self.status, status, "{:#}", self.raw);
        assert_eq!(self.body["code"], code, "{:#}", self.raw);
        assert_eq!(self.header("content-type"), Some("application/json"));
        self.body["message"].as_str().unwrap()
    }
}

async fn call(handler: &Handler, event: &Value) -> Reply {
    let bytes = serde_json::to_vec(event).unwrap();
    let out = handler.invoke_json(&bytes).await.unwrap();
    let raw: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(raw["isBase64Encoded"], false);
    let mut headers = Vec::new();
    if let Some(map) = raw["headers"].as_object() {
        for (k, v) in map {
            headers.push((k.clone(), v.as_str().unwrap().to_string()));
        }
    }
    if let Some(map) = raw["multiValueHeaders"].as_object() {
        for (k, v) in map {
            headers.push((k.clone(), v[0].as_str().unwrap().to_string()));
        }
    }
    let text = raw["body"].as_str().unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap()
    };
    Reply {
        status: raw["statusCode"].as_u64().unwrap(),
        raw,
        headers,
        body,
    }
}

fn is_v2(event: &Value) -> bool {
    event["version"] == "2.0"
}

/// The event with another method and path (the stage, if any, kept).
fn with_route(mut event: Value, method: &str, path: &str) -> Value {
    if is_v2(&event) {
        let stage = event["requestContext"]["stage"]
            .as_str()
            .unwrap()
            .to_string();
        let full = if stage == "$default" {
            path.to_string()
        } else {
            format!("/{stage}{path}")
        };
        event["rawPath"] = json!(full);
        event["requestContext"]["http"]["method"] = json!(method);
        event["requestContext"]["http"]["path"] = json!(full);
    } else {
        event["httpMethod"] = json!(method);
        event["path"] = json!(path);
    }
    event
}

fn with_body(mut event: Value, body: &str) -> Value {
    event["body"] = json!(body);
    event["isBase64Encoded"] = json!(false);
    event
}

fn with_base64_body(mut event: Value, body: &[u8]) -> Value {
    event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
    event["isBase64Encoded"] = json!(true);
    event
}

fn with_header(mut event: Value, name: &str, value: &str) -> Value {
    if let Some(map) = event["multiValueHeaders"].as_object_mut() {
        map.insert(name.to_string(), json!([value]));
    }
    if event["headers"].is_object() || event["multiValueHeaders"].is_null() {
        event["headers"][name] = json!(value);
    }
    event
}

const GATEWAYS: [&str; 4] = ["rest_v1", "http_v2", "function_url", "alb"];

fn check_body(principal: Value, resource: Value, actions: Value) -> String {
    json!({"requestId": "t", "principal": principal, "resource": resource, "actions": actions})
        .to_string()
}

fn alice() -> Value {
    json!({"id": "alice", "roles": ["editor"], "attributes": {}})
}

fn document() -> Value {
    json!({"kind": "document", "id": "1", "attributes": {}})
}

#[tokio::test]
async fn readme_check_is_allowed_through_every_gateway() {
    let handler = handler().await;
    for gateway in GATEWAYS {
        let reply = call(&handler, &fixture(&format!("{gateway}_check.json"))).await;
        assert_eq!(reply.status, 200, "{gateway}: {:#}", reply.raw);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.body["requestId"], "test", "{gateway}");
        assert_eq!(reply.body["resourceId"], "1", "{gateway}");
        assert_eq!(
            reply.body["actions"],
            json!({"view": "EFFECT_ALLOW"}),
            "{gateway}"
        );
        assert_eq!(reply.body["cerbosCallId"].as_str().unwrap().len(), 26);
    }
}

#[tokio::test]
async fn check_resources_through_every_gateway() {
    let handler = handler().await;
    for gateway in GATEWAYS {
        let reply = call(
            &handler,
            &fixture(&format!("{gateway}_check_resources.json")),
        )
        .await;
        assert_eq!(reply.status, 200, "{gateway}: {:#}", reply.raw);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.body["requestId"], "test");
        let result = &reply.body["results"][0];
        assert_eq!(result["resource"], json!({"id": "1", "kind": "document"}));
        assert_eq!(
            result["actions"],
            json!({"view": "EFFECT_ALLOW", "edit": "EFFECT_ALLOW", "delete": "EFFECT_DENY"}),
            "{gateway}"
        );
    }
}

#[tokio::test]
async fn response_shape_follows_the_gateway() {
    let handler = handler().await;
    let rest = call(&handler, &fixture("rest_v1_check.json")).await;
    assert!(rest.raw["headers"].is_object());
    assert!(rest.raw.get("statusDescription").is_none());
    let v2 = call(&handler, &fixture("http_v2_check.json")).await;
    assert!(v2.raw["headers"].is_object());
    assert!(v2.raw.get("multiValueHeaders").is_none());
    let alb = call(&handler, &fixture("alb_check.json")).await;
    assert_eq!(alb.raw["statusDescription"], "200 OK");
    assert!(alb.raw["headers"].is_object());
    let alb_mv = call(&handler, &fixture("alb_check_resources.json")).await;
    assert_eq!(alb_mv.raw["statusDescription"], "200 OK");
    assert_eq!(
        alb_mv.raw["multiValueHeaders"]["content-type"],
        json!(["application/json"])
    );
    assert!(alb_mv.raw.get("headers").is_none());
}

#[tokio::test]
async fn stage_prefix_is_stripped() {
    let handler = handler().await;
    // REST with the stage in `path`, REST without it, HTTP API with a named stage.
    let with_stage = fixture("rest_v1_check.json");
    assert_eq!(with_stage["path"], "/prod/api/check");
    assert_eq!(call(&handler, &with_stage).await.status, 200);
    let without = with_route(fixture("rest_v1_check.json"), "POST", "/api/check");
    assert_eq!(call(&handler, &without).await.status, 200);
    let named = fixture("http_v2_check_resources.json");
    assert_eq!(named["rawPath"], "/prod/api/check/resources");
    assert_eq!(call(&handler, &named).await.status, 200);
    // Only a whole leading segment equal to the stage is removed.
    let other = with_route(
        fixture("rest_v1_check.json"),
        "POST",
        "/production/api/check",
    );
    call(&handler, &other).await.assert_error(404, 5);
}

#[tokio::test]
async fn malformed_json_is_400() {
    let handler = handler().await;
    for gateway in GATEWAYS {
        let event = with_body(
            fixture(&format!("{gateway}_check.json")),
            "{\"requestId\": ",
        );
        let message = call(&handler, &event)
            .await
            .assert_error(400, 3)
            .to_string();
        assert!(message.contains("invalid JSON"), "{message}");
        let event = with_body(fixture(&format!("{gateway}_check_resources.json")), "[1, 2");
        call(&handler, &event).await.assert_error(400, 3);
    }
}

#[tokio::test]
async fn empty_body_is_400() {
    let handler = handler().await;
    let mut event = fixture("http_v2_check.json");
    event.as_object_mut().unwrap().remove("body");
    let message = call(&handler, &event)
        .await
        .assert_error(400, 3)
        .to_string();
    assert!(message.contains("empty"), "{message}");
}

#[tokio::test]
async fn wrong_types_are_400_and_name_the_field() {
    let handler = handler().await;
    let cases = [
        (check_body(alice(), document(), json!("view")), "actions"),
        (
            check_body(
                json!({"id": 7, "roles": ["editor"]}),
                document(),
                json!(["view"]),
            ),
            "principal.id",
        ),
        (
            check_body(
                alice(),
                json!({"kind": "document", "id": "1", "attributes": []}),
                json!(["view"]),
            ),
            "resource.attributes",
        ),
        (
            check_body(
                json!({"id": "alice", "roles": "editor"}),
                document(),
                json!(["view"]),
            ),
            "principal.roles",
        ),
    ];
    for (body, field) in cases {
        let event = with_body(fixture("function_url_check.json"), &body);
        let message = call(&handler, &event)
            .await
            .assert_error(400, 3)
            .to_string();
        assert!(message.contains(field), "{field}: {message}");
    }
    let body = json!({"principal": alice(), "resources": {"actions": ["view"]}}).to_string();
    let event = with_body(fixture("function_url_check_resources.json"), &body);
    let message = call(&handler, &event)
        .await
        .assert_error(400, 3)
        .to_string();
    assert!(message.contains("resources"), "{message}");
}

#[tokio::test]
async fn missing_parts_are_400() {
    let handler = handler().await;
    let cases = [
        (
            json!({"resource": document(), "actions": ["view"]}),
            "principal: value is required",
        ),
        (
            json!({"principal": alice(), "actions": ["view"]}),
            "resource: value is required",
        ),
        (
            json!({"principal": alice(), "resource": document()}),
            "actions: value is required",
        ),
        (
            json!({"principal": alice(), "resource": document(), "actions": []}),
            "actions: value is required",
        ),
    ];
    for (body, expected) in cases {
        let event = with_body(fixture("alb_check.json"), &body.to_string());
        let message = call(&handler, &event)
            .await
            .assert_error(400, 3)
            .to_string();
        assert!(message.contains(expected), "{expected}: {message}");
    }
    let body = json!({"requestId": "x", "principal": alice()}).to_string();
    let event = with_body(fixture("alb_check_resources.json"), &body);
    let message = call(&handler, &event)
        .await
        .assert_error(400, 3)
        .to_string();
    assert!(
        message.contains("resources: value is required"),
        "{message}"
    );
}

#[tokio::test]
async fn empty_ids_are_400() {
    let handler = handler().await;
    let body = check_body(
        json!({"id": "", "roles": ["editor"]}),
        document(),
        json!(["view"]),
    );
    let event = with_body(fixture("rest_v1_check.json"), &body);
    let message = call(&handler, &event)
        .await
        .assert_error(400, 3)
        .to_string();
    assert!(
        message.contains("principal.id: value is required"),
        "{message}"
    );
    let body = check_body(
        alice(),
        json!({"kind": "document", "id": ""}),
        json!(["view"]),
    );
    let event = with_body(fixture("rest_v1_check.json"), &body);
    let message = call(&handler, &event)
        .await
        .assert_error(400, 3)
        .to_string();
    assert!(
        message.contains("resource.id: value is required"),
        "{message}"
    );
}

#[tokio::test]
async fn more_than_50_resources_or_actions_is_400() {
    let handler = handler().await;
    let entry = |i: usize| json!({"actions": ["view"], "resource": {"kind": "document", "id": i.to_string()}});
    let fifty: Vec<Value> = (0..50).map(entry).collect();
    let body = json!({"principal": alice(), "resources": fifty}).to_string();
    let event = with_body(fixture("http_v2_check_resources.json"), &body);
    let reply = call(&handler, &event).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["results"].as_array().unwrap().len(), 50);

    let fifty_one: Vec<Value> = (0..51).map(entry).collect();
    let body = json!({"principal": alice(), "resources": fifty_one}).to_string();
    let event = with_body(fixture("http_v2_check_resources.json"), &body);
    let message = call(&handler, &event)
        .await
        .assert_error(400, 3)
        .to_string();
    assert!(message.contains("no more than 50"), "{message}");

    let actions: Vec<String> = (0..51).map(|i| format!("a{i}")).collect();
    let body = check_body(alice(), document(), json!(actions));
    let event = with_body(fixture("http_v2_check.json"), &body);
    let message = call(&handler, &event)
        .await
        .assert_error(400, 3)
        .to_string();
    assert!(
        message.contains("actions") && message.contains("no more than 50"),
        "{message}"
    );
}

#[tokio::test]
async fn body_over_4_mib_is_413_plain_and_base64() {
    let handler = handler().await;
    let body = check_body(alice(), document(), json!(["view"]));
    // Valid JSON padded with whitespace just past the limit.
    let mut big = body.clone();
    big.push_str(&" ".repeat(MAX_BODY_BYTES + 1 - body.len()));
    assert_eq!(big.len(), MAX_BODY_BYTES + 1);
    let event = with_body(fixture("function_url_check.json"), &big);
    call(&handler, &event).await.assert_error(413, 8);
    let event = with_base64_body(fixture("function_url_check.json"), big.as_bytes());
    call(&handler, &event).await.assert_error(413, 8);
    // Exactly at the limit it is accepted, base64 or not.
    big.pop();
    let event = with_base64_body(fixture("function_url_check.json"), big.as_bytes());
    assert_eq!(call(&handler, &event).await.status, 200);
    let event = with_body(fixture("alb_check.json"), &big);
    assert_eq!(call(&handler, &event).await.status, 200);
}

#[tokio::test]
async fn invalid_base64_is_400_not_a_crash() {
    let handler = handler().await;
    let mut event = fixture("function_url_check_resources.json");
    event["body"] = json!("%%% not base64 %%%");
    let message = call(&handler, &event)
        .await
        .assert_error(400, 3)
        .to_string();
    assert!(message.contains("base64"), "{message}");
}

#[tokio::test]
async fn hostile_host_header_is_harmless() {
    // lambda_http's conversion would panic on this Host; this handler ignores it.
    let handler = handler().await;
    let event = with_header(fixture("alb_check.json"), "host", "exa mple/\\bad host");
    assert_eq!(call(&handler, &event).await.status, 200);
}

#[tokio::test]
async fn deep_nesting_is_400() {
    let handler = handler().await;
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let body = format!(
        r#"{{"principal":{{"id":"alice","roles":["editor"],"attr":{{"deep":{nested}}}}},"resource":{{"kind":"document","id":"1"}},"actions":["view"]}}"#
    );
    let event = with_body(fixture("http_v2_check.json"), &body);
    let message = call(&handler, &event)
        .await
        .assert_error(400, 3)
        .to_string();
    assert!(message.contains("recursion limit"), "{message}");
    let event = with_base64_body(fixture("function_url_check.json"), body.as_bytes());
    call(&handler, &event).await.assert_error(400, 3);
}

#[tokio::test]
async fn unknown_route_is_404() {
    let handler = handler().await;
    for gateway in GATEWAYS {
        for path in [
            "/",
            "/api",
            "/api/checks",
            "/api/plan/resources",
            "/prod/nothing",
        ] {
            let event = with_route(fixture(&format!("{gateway}_check.json")), "POST", path);
            let reply = call(&handler, &event).await;
            assert_eq!(reply.assert_error(404, 5), "Not Found", "{gateway} {path}");
        }
    }
}

#[tokio::test]
async fn wrong_method_is_405() {
    let handler = handler().await;
    let cases = [
        ("GET", "/api/check", "POST"),
        ("PUT", "/api/check/resources", "POST"),
        ("DELETE", "/api/check", "POST"),
        ("POST", "/_cerbos/health", "GET"),
        ("POST", "/api/server_info", "GET"),
    ];
    for gateway in GATEWAYS {
        for (method, path, allow) in cases {
            let event = with_route(fixture(&format!("{gateway}_check.json")), method, path);
            let reply = call(&handler, &event).await;
            assert_eq!(reply.assert_error(405, 12), "Method Not Allowed");
            assert_eq!(
                reply.header("allow"),
                Some(allow),
                "{gateway} {method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn health_and_server_info() {
    let handler = handler().await;
    for gateway in GATEWAYS {
        let event = with_route(
            fixture(&format!("{gateway}_check.json")),
            "GET",
            "/_cerbos/health",
        );
        let reply = call(&handler, &event).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, json!({"status": "SERVING"}));
        assert_eq!(reply.header("content-type"), Some("application/json"));

        let event = with_route(
            fixture(&format!("{gateway}_check.json")),
            "GET",
            "/api/server_info",
        );
        let reply = call(&handler, &event).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body["version"], env!("CARGO_PKG_VERSION"));
        assert!(!reply.body["commit"].as_str().unwrap().is_empty());
        assert!(!reply.body["buildDate"].as_str().unwrap().is_empty());
    }
}

fn preflight(gateway: &str, origin: &str, method: &str, headers: &str) -> Value {
    let event = with_route(
        fixture(&format!("{gateway}_check.json")),
        "OPTIONS",
        "/api/check/resources",
    );
    let event = with_header(event, "origin", origin);
    let event = with_header(event, "access-control-request-method", method);
    let mut event = with_header(event, "access-control-request-headers", headers);
    event.as_object_mut().unwrap().remove("body");
    event
}

#[tokio::test]
async fn cors_defaults_allow_any_origin() {
    let handler = handler().await;
    for gateway in GATEWAYS {
        let reply = call(
            &handler,
            &preflight(gateway, "https://app.example.com", "POST", "content-type"),
        )
        .await;
        assert_eq!(reply.status, 204, "{gateway}: {:#}", reply.raw);
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
        assert_eq!(reply.header("access-control-allow-methods"), Some("POST"));
        assert_eq!(
            reply.header("access-control-allow-headers"),
            Some("content-type")
        );
        assert_eq!(reply.raw["body"], "");

        let event = with_header(
            fixture(&format!("{gateway}_check.json")),
            "origin",
            "https://app.example.com",
        );
        let reply = call(&handler, &event).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    }
}

#[tokio::test]
async fn cors_allowed_origins_headers_and_max_age() {
    let handler = handler_with(
        "server:\n  httpListenAddr: \":3592\"\n  cors:\n    allowedOrigins: [\"https://app.example.com\"]\n    allowedHeaders: [\"content-type\", \"x-request-id\"]\n    maxAge: 10m\n",
    )
    .await;
    let reply = call(
        &handler,
        &preflight(
            "http_v2",
            "https://app.example.com",
            "POST",
            "Content-Type, X-Request-Id",
        ),
    )
    .await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("Content-Type, X-Request-Id")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
    assert!(reply.header("vary").unwrap().contains("Origin"));

    // A header outside the list, a method the API has not, another origin: no allow headers.
    for (origin, method, headers) in [
        ("https://app.example.com", "POST", "x-secret"),
        ("https://app.example.com", "DELETE", "content-type"),
        ("https://evil.example.com", "POST", "content-type"),
    ] {
        let reply = call(&handler, &preflight("rest_v1", origin, method, headers)).await;
        assert_eq!(reply.status, 204);
        assert_eq!(
            reply.header("access-control-allow-origin"),
            None,
            "{origin} {method} {headers}"
        );
    }

    let event = with_header(
        fixture("alb_check_resources.json"),
        "origin",
        "https://evil.example.com",
    );
    let reply = call(&handler, &event).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    let event = with_header(
        fixture("alb_check_resources.json"),
        "origin",
        "https://app.example.com",
    );
    let reply = call(&handler, &event).await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
}

#[tokio::test]
async fn cors_disabled_means_no_headers_and_options_is_405() {
    let handler = handler_with("server:\n  cors:\n    disabled: true\n").await;
    let reply = call(
        &handler,
        &preflight(
            "function_url",
            "https://app.example.com",
            "POST",
            "content-type",
        ),
    )
    .await;
    reply.assert_error(405, 12);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    let event = with_header(
        fixture("function_url_check.json"),
        "origin",
        "https://app.example.com",
    );
    let reply = call(&handler, &event).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert_eq!(reply.header("vary"), None);
}

#[tokio::test]
async fn non_http_events_are_invocation_errors() {
    let handler = handler().await;
    let err = handler
        .invoke_json(br#"{"Records": []}"#)
        .await
        .unwrap_err();
    assert!(matches!(err, HandlerError::UnsupportedEvent), "{err}");
    let err = handler.invoke_json(b"not json").await.unwrap_err();
    assert!(matches!(err, HandlerError::Event(_)), "{err}");
    let err = handler
        .invoke_json(br#"{"httpMethod": 5}"#)
        .await
        .unwrap_err();
    assert!(matches!(err, HandlerError::Event(_)), "{err}");
}

/// Collects what the JSON-lines formatter writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }
}

#[tokio::test]
async fn decision_logs_carry_the_decision_and_never_credentials() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(JsonLines)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let handler = handler_with(
        "audit:\n  enabled: true\n  decisionLogsEnabled: true\n  includeMetadataKeys: [\"authorization\", \"x-tenant\", \"x-id-token\", \"user-agent\"]\n",
    )
    .await;
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
    let mut event = fixture("rest_v1_check_resources.json");
    assert!(event["headers"]["Authorization"]
        .as_str()
        .unwrap()
        .contains(token));
    event = with_header(event, "X-Tenant", "acme");
    event = with_header(event, "X-Id-Token", token);
    let body = json!({
        "requestId": "req-42",
        "principal": {"id": "alice", "roles": ["editor"], "attr": {"ssn": "123-45-6789"}},
        "resources": [{"actions": ["view", "delete"], "resource": {"kind": "document", "id": "1", "attr": {"owner": "bob"}}}],
        "auxData": {"jwt": {"token": token}}
    });
    let event = with_body(event, &body.to_string());
    let span = tracing::info_span!("Lambda runtime invoke", requestId = "lambda-req-1");
    // The JWT cannot be verified (no key sets), so this is a 400, not a decision.
    let refused = call(&handler, &event).instrument(span.clone()).await;
    assert_eq!(refused.status, 400);
    let mut body = body;
    body.as_object_mut().unwrap().remove("auxData");
    let event = with_body(event, &body.to_string());
    let reply = call(&handler, &event).instrument(span).await;
    assert_eq!(reply.status, 200);

    let lines = captured.lines();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains(token), "a JWT reached the log:\n{text}");
    assert!(
        !text.contains("Bearer"),
        "the Authorization header reached the log:\n{text}"
    );
    assert!(
        !text.contains("123-45-6789"),
        "attributes reached the log:\n{text}"
    );
    let decisions: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 1, "{text}");
    let line = decisions[0];
    assert_eq!(
        line["requestId"], "lambda-req-1",
        "Lambda request id flattened: {line:#}"
    );
    assert_eq!(line["level"], "INFO");
    let decision = &line["decision"];
    assert_eq!(decision["callId"], reply.body["cerbosCallId"]);
    assert_eq!(decision["requestId"], "req-42");
    assert_eq!(decision["method"], "/api/check/resources");
    assert_eq!(
        decision["principal"],
        json!({"id": "alice", "roles": ["editor"]})
    );
    assert_eq!(
        decision["resources"],
        json!([{
            "kind": "document",
            "id": "1",
            "actions": {
                "view": {"effect": "EFFECT_ALLOW", "policy": "resource.document.vdefault"},
                "delete": {"effect": "EFFECT_DENY", "policy": "resource.document.vdefault"}
            }
        }])
    );
    assert_eq!(
        decision["metadata"],
        json!({
            "user-agent": {"values": ["curl/8.5.0"]},
            "x-id-token": {"values": ["[REDACTED]"]},
            "x-tenant": {"values": ["acme"]}
        })
    );
}

#[tokio::test]
async fn no_decision_logs_unless_enabled() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(JsonLines)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let off = handler_with("audit:\n  enabled: true\n  decisionLogsEnabled: false\n").await;
    assert_eq!(call(&off, &fixture("http_v2_check.json")).await.status, 200);
    let plain = handler().await;
    assert_eq!(
        call(&plain, &fixture("http_v2_check.json")).await.status,
        200
    );
    assert!(captured.lines().iter().all(|l| l["message"] != "decision"));
}
