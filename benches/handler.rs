//! Per-invocation handler time: gateway event JSON in, response JSON out,
//! for `POST /api/check/resources` with one resource and three actions (one
//! of them behind a CEL condition), as each gateway sends it.
//!
//! This is what `bootstrap`'s loop does between receiving `/next` and
//! posting the response (`Handler::respond_json`, no policy refresh due),
//! minus the two Runtime API round trips. Run with
//! `cargo bench --bench handler`; see `support::policies_under_test` for
//! running it on a generated policy set.

mod support;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let (config, generated_body) = support::policies_under_test();
    let handler = support::open_handler(&config);
    let mut group = c.benchmark_group("check_resources_1x3");
    for gateway in ["http_v2", "function_url", "rest_v1", "alb"] {
        let event = support::event_under_test(
            &format!("{gateway}_check_resources"),
            generated_body.as_deref(),
        );
        let out = handler.respond_json(&event).expect("answer");
        assert!(
            String::from_utf8_lossy(&out)
                .contains(support::expected_in_answer(generated_body.as_deref())),
            "unexpected answer: {}",
            String::from_utf8_lossy(&out)
        );
        group.bench_function(gateway, |b| {
            b.iter(|| handler.respond_json(black_box(&event)).expect("answer"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
