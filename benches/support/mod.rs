//! What the handler benches share: the fixture policy set and events, and a
//! handler loaded on them as `bootstrap` loads one at cold start.

use std::path::Path;

use verdict::config::Config;
use verdict::lambda::Handler;

pub fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

/// A config serving the fixture policies from disk.
pub fn fixture_config() -> Config {
    let yaml = format!(
        "storage:\n  driver: disk\n  disk:\n    directory: {}\n",
        fixtures().join("policies").display()
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
pub fn fixture_event(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("events").join(format!("{name}.json"))).expect("fixture")
}
