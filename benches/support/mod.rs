//! What the handler benches share: the fixture policy set and events, and a
//! handler loaded on them as `bootstrap` loads one at cold start.

use std::path::Path;

use serde_json::Value;

use verdict::config::Config;
use verdict::lambda::Handler;

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

/// A config serving the fixture policies from disk.
fn fixture_config() -> Config {
    disk_config(&fixtures().join("policies"))
}

fn disk_config(policies: &Path) -> Config {
    let yaml = format!(
        "storage:\n  driver: disk\n  disk:\n    directory: {}\n",
        policies.display()
    );
    Config::from_yaml("bench.yaml", &yaml, &|_| None).expect("config")
}

/// The handler for `config`, its policies loaded.
pub fn open_handler(config: &Config) -> Handler {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(Handler::open(config))
        .expect("policies load")
        .0
}

/// A gateway event from the fixtures, e.g. `http_v2_check_resources`.
fn fixture_event(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("events").join(format!("{name}.json"))).expect("fixture")
}

/// The policies the benches run on: the fixture policies; or, when
/// `VERDICT_BENCH_POLICIES` names a policy folder (e.g. one made by
/// `scripts/gen_policies.py`), that folder, with the request body in the file
/// `VERDICT_BENCH_REQUEST` for [`event_under_test`] to send.
pub fn policies_under_test() -> (Config, Option<String>) {
    let Some(policies) = std::env::var_os("VERDICT_BENCH_POLICIES") else {
        return (fixture_config(), None);
    };
    let request = std::env::var_os("VERDICT_BENCH_REQUEST").expect("VERDICT_BENCH_REQUEST");
    let body = std::fs::read_to_string(request).expect("request body");
    (disk_config(Path::new(&policies)), Some(body))
}

/// The fixture event `name`, carrying `body` instead of its own when given.
pub fn event_under_test(name: &str, body: Option<&str>) -> Vec<u8> {
    let event = fixture_event(name);
    let Some(body) = body else { return event };
    let mut event: Value = serde_json::from_slice(&event).expect("fixture event");
    event["body"] = Value::String(body.to_string());
    event["isBase64Encoded"] = Value::Bool(false);
    serde_json::to_vec(&event).expect("event")
}

/// A decision the answer must hold: the fixture request's `delete` is
/// denied; a generated request is at least partly allowed.
pub fn expected_in_answer(body: Option<&str>) -> &'static str {
    match body {
        None => r#"\"delete\":\"EFFECT_DENY\""#,
        Some(_) => "EFFECT_ALLOW",
    }
}
