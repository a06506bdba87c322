//! Per-invocation handler time: gateway event JSON in, response JSON out,
//! for `POST /api/check/resources` with one resource and three actions (one
//! of them behind a CEL condition), as each gateway sends it.
//!
//! This is what the runtime does between receiving `/next` and posting the
//! response, minus the two Runtime API round trips. Run with
//! `cargo bench --bench handler`.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use verdict::config::Config;
use verdict::lambda::Handler;

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

fn handler(runtime: &tokio::runtime::Runtime) -> Handler {
    let yaml = format!(
        "storage:\n  driver: disk\n  disk:\n    directory: {}\n",
        fixtures().join("policies").display()
    );
    let config = Config::from_yaml("bench.yaml", &yaml, &|_| None).expect("config");
    runtime
        .block_on(Handler::open(&config))
        .expect("policies load")
        .0
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let handler = handler(&runtime);
    let mut group = c.benchmark_group("check_resources_1x3");
    for gateway in ["http_v2", "function_url", "rest_v1", "alb"] {
        let path = fixtures()
            .join("events")
            .join(format!("{gateway}_check_resources.json"));
        let event = std::fs::read(&path).expect("fixture");
        let out = runtime
            .block_on(handler.invoke_json(&event))
            .expect("answer");
        assert!(
            String::from_utf8_lossy(&out).contains(r#"\"delete\":\"EFFECT_DENY\""#),
            "unexpected answer: {}",
            String::from_utf8_lossy(&out)
        );
        group.bench_function(gateway, |b| {
            b.iter(|| {
                runtime
                    .block_on(handler.invoke_json(black_box(&event)))
                    .expect("answer")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
