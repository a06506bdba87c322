//! One check through the engine (1 resource, 3 actions, conditions
//! evaluated) against a generated set of 100 resource policies and the same
//! against 5,000: with hashed lookups the two should cost about the same.
//!
//! The sets have the shape `scripts/gen_policies.py` writes (two derived
//! roles, exported variables and constants, four CEL conditions per policy,
//! one principal policy); the generator below is a Rust copy of it, so the
//! bench needs no Python. Run with `cargo bench --bench engine`.

use std::hint::black_box;

use criterion::{criterion_group, Criterion};
use serde_json::json;
use verdict::compile::{compile, EngineSettings, RuleIndex};
use verdict::engine::{self, Effect, Principal, Resource, ResourceCheck};
use verdict::store::StoreFile;

const STATUSES: [&str; 4] = ["draft", "review", "published", "archived"];
const REGIONS: [&str; 3] = ["eu", "us", "apac"];
const HEADER: &str = "---\napiVersion: api.cerbos.dev/v1\n";

fn kind_name(i: usize) -> String {
    format!("res_{i:04}")
}

fn derived_roles() -> String {
    format!(
        r#"{HEADER}derivedRoles:
  name: gen_common
  variables:
    import:
      - gen_shared
  definitions:
    - name: owner
      parentRoles: ["user", "manager"]
      condition:
        match:
          expr: R.attr.owner == P.id
    - name: dept_member
      parentRoles: ["user"]
      condition:
        match:
          all:
            of:
              - expr: V.same_department
              - expr: R.attr.status != "archived"
"#
    )
}

fn exported_variables() -> String {
    format!(
        r#"{HEADER}exportVariables:
  name: gen_shared
  definitions:
    same_department: R.attr.department == P.attr.department
    is_published: R.attr.status == "published"
    tag_overlap: hasIntersection(R.attr.tags, P.attr.tags)
"#
    )
}

fn exported_constants() -> String {
    format!(
        r#"{HEADER}exportConstants:
  name: gen_limits
  definitions:
    max_size: 1000
    regions: ["eu", "us"]
"#
    )
}

fn resource_policy(i: usize) -> String {
    let kind = kind_name(i);
    let statuses = format!("['{}', '{}']", STATUSES[i % 4], STATUSES[(i + 1) % 4]);
    let region = REGIONS[i % REGIONS.len()];
    let prefix = format!("doc{}", i % 10);
    let threshold = 100 + (i % 50) * 10;
    format!(
        r#"{HEADER}resourcePolicy:
  resource: {kind}
  version: default
  importDerivedRoles:
    - gen_common
  constants:
    import:
      - gen_limits
    local:
      threshold: {threshold}
  variables:
    import:
      - gen_shared
    local:
      visible_status: R.attr.status in {statuses}
  rules:
    - actions: ["view", "view:*"]
      effect: EFFECT_ALLOW
      roles: ["user"]
      condition:
        match:
          any:
            of:
              - expr: V.visible_status
              - expr: V.is_published
    - actions: ["edit"]
      effect: EFFECT_ALLOW
      derivedRoles: ["owner"]
      condition:
        match:
          expr: R.attr.size < C.threshold && R.attr.size <= C.max_size
      output:
        when:
          ruleActivated: |-
            {{"rule": "edit", "kind": R.kind, "size": R.attr.size}}
          conditionNotMet: |-
            "edit denied for " + P.id
    - actions: ["share"]
      effect: EFFECT_ALLOW
      derivedRoles: ["dept_member"]
      condition:
        match:
          expr: V.tag_overlap
    - name: approve_recent
      actions: ["approve"]
      effect: EFFECT_ALLOW
      roles: ["manager"]
      condition:
        match:
          all:
            of:
              - expr: timestamp(R.attr.created_at) > timestamp("2020-01-01T00:00:00Z")
              - expr: R.attr.title.startsWith("{prefix}")
              - expr: R.attr.region in C.regions || R.attr.region == "{region}"
    - actions: ["*"]
      effect: EFFECT_ALLOW
      roles: ["admin"]
    - actions: ["delete", "edit"]
      effect: EFFECT_DENY
      roles: ["*"]
      condition:
        match:
          expr: R.attr.locked == true
      output:
        when:
          ruleActivated: '"locked"'
"#
    )
}

fn principal_policy(count: usize) -> String {
    let last = kind_name(count.saturating_sub(1));
    format!(
        r#"{HEADER}principalPolicy:
  principal: gen_auditor
  version: default
  variables:
    import:
      - gen_shared
  rules:
    - resource: "res_*"
      actions:
        - action: "view:*"
          effect: EFFECT_ALLOW
        - action: "delete"
          effect: EFFECT_DENY
        - name: audit_approve
          action: "approve"
          effect: EFFECT_ALLOW
          condition:
            match:
              expr: V.is_published && P.attr.level >= 3
          output:
            when:
              ruleActivated: P.id + " approved " + R.id
    - resource: "{last}"
      actions:
        - action: "*"
          effect: EFFECT_DENY
"#
    )
}

/// The files `gen_policies.py --count N` writes, in memory.
fn generate(count: usize) -> Vec<StoreFile> {
    let file = |name: String, text: String| StoreFile {
        name,
        bytes: text.into_bytes(),
    };
    let mut files = vec![
        file("derived_roles/gen_common.yaml".into(), derived_roles()),
        file(
            "export_variables/gen_shared.yaml".into(),
            exported_variables(),
        ),
        file(
            "export_constants/gen_limits.yaml".into(),
            exported_constants(),
        ),
        file(
            "principal_policies/gen_auditor.yaml".into(),
            principal_policy(count),
        ),
    ];
    files.extend((0..count).map(|i| {
        file(
            format!("resource_policies/{}.yaml", kind_name(i)),
            resource_policy(i),
        )
    }));
    files
}

fn index(count: usize) -> RuleIndex {
    let files = generate(count);
    // VERDICT_BENCH_DUMP=DIR writes the set out, to compare it with the
    // Python generator's or to run `cerbos compile` on it.
    if let Some(dir) = std::env::var_os("VERDICT_BENCH_DUMP") {
        let root = std::path::Path::new(&dir).join(format!("gen{count}"));
        for f in &files {
            let path = root.join(&f.name);
            std::fs::create_dir_all(path.parent().expect("has a folder")).expect("mkdir");
            std::fs::write(&path, &f.bytes).expect("write");
        }
    }
    let (policies, errors) = verdict::policy::parse_set(&files);
    assert!(errors.is_empty(), "generated set parses: {errors:?}");
    compile(&policies, &[], EngineSettings::default()).expect("generated set compiles")
}

fn attrs(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// A request whose three actions each evaluate conditions: `view` (a local
/// and an exported variable), `edit` (the owner derived role, constants and
/// an output) and `approve` (a timestamp, a string function and `in`).
fn request(kind: &str) -> (Principal, Vec<ResourceCheck>) {
    let principal = Principal {
        id: "alice".into(),
        roles: vec!["user".into(), "manager".into()],
        attr: attrs(json!({"department": "sales", "tags": ["alpha", "beta"], "level": 2})),
        ..Principal::default()
    };
    let resource = Resource {
        kind: kind.into(),
        id: "doc-1".into(),
        attr: attrs(json!({
            "owner": "alice",
            "department": "sales",
            "status": "published",
            "tags": ["beta", "gamma"],
            "size": 50,
            "created_at": "2024-05-01T10:00:00Z",
            "title": format!("doc{}-report", kind[4..].parse::<usize>().unwrap_or(0) % 10),
            "region": "eu",
            "locked": false,
        })),
        ..Resource::default()
    };
    let checks = vec![ResourceCheck {
        resource,
        actions: vec!["view".into(), "edit".into(), "approve".into()],
    }];
    (principal, checks)
}

fn bench(c: &mut Criterion) {
    let now = chrono::Utc::now().fixed_offset();
    let mut group = c.benchmark_group("engine_check_1x3");
    for (count, kind) in [(100, "res_0042"), (5000, "res_2542")] {
        let index = index(count);
        let (principal, checks) = request(kind);
        let result = engine::check(&index, &principal, None, &checks, now);
        let effects: Vec<Effect> = result[0].actions.iter().map(|a| a.effect).collect();
        assert_eq!(
            effects,
            [Effect::Allow, Effect::Allow, Effect::Allow],
            "unexpected decisions: {result:?}"
        );
        group.bench_function(format!("{count}_policies"), |b| {
            b.iter(|| {
                engine::check(
                    black_box(&index),
                    black_box(&principal),
                    None,
                    black_box(&checks),
                    now,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

/// `VERDICT_BENCH_ITERS=N [VERDICT_BENCH_SIZE=100]` runs N checks and no
/// criterion, for counting instructions under `valgrind --tool=callgrind`
/// (compare N against 0 to take the set's compilation out).
fn main() {
    if let Some(iterations) = std::env::var("VERDICT_BENCH_ITERS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        let count = std::env::var("VERDICT_BENCH_SIZE")
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(100);
        let index = index(count);
        let (principal, checks) = request(&kind_name(count / 2 + 42));
        let now = chrono::Utc::now().fixed_offset();
        for _ in 0..iterations {
            black_box(engine::check(
                black_box(&index),
                &principal,
                None,
                &checks,
                now,
            ));
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
