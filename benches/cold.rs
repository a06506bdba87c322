//! One invocation with the CPU caches cold, against the same invocation
//! warm: gateway event JSON in, response JSON out, `POST
//! /api/check/resources` with one resource and three actions; then the
//! stages of that invocation one by one, each cold.
//!
//! A warm loop keeps every line the handler touches in L1/L2. On Lambda, and
//! in `scripts/bench_vs_cerbos.py` whenever the function and its client sit
//! on different vCPUs, each event arrives at a CPU that was idle in between
//! and has lost them, so what an invocation costs there is mostly how many
//! distinct code and data lines it touches. Before each timed cold call the
//! bench writes one byte per line of a buffer larger than the last-level
//! cache, which evicts them (and the TLB entries) again. The allocator is
//! `bootstrap`'s, since where its pages lie is part of what is measured.
//! Run with `cargo bench --bench cold`; see `support::policies_under_test` for
//! running it on a generated policy set.

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};
use verdict::lambda::{EscapedBody, HttpEvent};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Larger than the last-level cache of the machines we measure on (32 MiB
/// per AMD EPYC core complex).
const EVICTION_BYTES: usize = 128 << 20;
const CACHE_LINE: usize = 64;

/// Times `work` alone, each call after an eviction pass.
fn cold<R>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    eviction: &mut [u8],
    name: &str,
    work: impl Fn() -> R,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iterations| {
            let mut timed = Duration::ZERO;
            for round in 0..iterations {
                for byte in eviction.iter_mut().step_by(CACHE_LINE) {
                    *byte = byte.wrapping_add(round as u8);
                }
                black_box(&*eviction);
                let started = Instant::now();
                black_box(work());
                timed += started.elapsed();
            }
            timed
        })
    });
}

fn bench(c: &mut Criterion) {
    let (config, generated_body) = support::policies_under_test();
    let event = support::event_under_test("http_v2_check_resources", generated_body.as_deref());
    let handler = support::open_handler(&config);
    let invoke = || handler.respond_json(black_box(&event)).expect("answer");
    assert!(String::from_utf8_lossy(&invoke())
        .contains(support::expected_in_answer(generated_body.as_deref())));

    // The stages, each fed what the one before it made.
    let parsed: HttpEvent = serde_json::from_slice(&event).expect("event");
    let body = parsed.body().expect("body").into_owned();
    let api = verdict::api::Api::new(&config).expect("api");
    let index = handler.policies().current();
    let now = chrono::Utc::now().fixed_offset();
    let checked = api.check_resources(&index, &body, now).expect("check");

    let mut group = c.benchmark_group("check_resources_1x3_http_v2");
    group.bench_function("warm", |b| b.iter(invoke));
    // Each cold call costs an eviction pass (milliseconds) that is not
    // timed: a fixed, modest number of calls per sample keeps the run short.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(40)
        .warm_up_time(Duration::from_millis(20))
        .measurement_time(Duration::from_millis(200));
    let mut eviction = vec![0u8; EVICTION_BYTES];
    cold(&mut group, &mut eviction, "cold", invoke);
    cold(&mut group, &mut eviction, "cold_event_parse", || {
        serde_json::from_slice::<HttpEvent>(black_box(&event)).expect("event")
    });
    cold(&mut group, &mut eviction, "cold_request_and_check", || {
        api.check_resources(&index, black_box(&body), now)
            .expect("check")
    });
    cold(&mut group, &mut eviction, "cold_engine", || {
        verdict::engine::check(&index, &checked.principal, None, &checked.resources, now)
    });
    cold(&mut group, &mut eviction, "cold_render", || {
        EscapedBody::render(&checked.check_resources_response(), 1024).expect("render")
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
