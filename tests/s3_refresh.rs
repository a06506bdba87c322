//! A warm function picks up policy changes in the bucket without a cold
//! start, and ignores a broken upload (DESIGN.md §6), against a real
//! S3-protocol server on 127.0.0.1.

#[path = "support/s3_server.rs"]
mod s3_server;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use s3_server::*;
use verdict::config::{Config, StorageConfig, StorageDriver};
use verdict::engine::{self, Effect, Principal, Resource, ResourceCheck};
use verdict::loader::{PolicySet, Refresh, Store};
use verdict::store::s3::S3Store;

fn document_policy(editor_actions: &str) -> String {
    format!(
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: document\n  version: default\n  rules:\n    - actions: {editor_actions}\n      roles: [editor]\n      effect: EFFECT_ALLOW\n"
    )
}

fn effect(policies: &PolicySet, action: &str) -> Effect {
    let principal = Principal {
        id: "alice".to_string(),
        roles: vec!["editor".to_string()],
        ..Principal::default()
    };
    let check = ResourceCheck {
        resource: Resource {
            kind: "document".to_string(),
            id: "1".to_string(),
            ..Resource::default()
        },
        actions: vec![action.to_string()],
    };
    let now = chrono::Utc::now().fixed_offset();
    engine::check(&policies.current(), &principal, None, &[check], now)[0].effect(action)
}

/// Longer than the test's `updatePollInterval` (250ms). The interval is
/// long enough that a stall on a busy CI machine does not make a check due
/// before the test asserts it is not.
const PAST_THE_INTERVAL: Duration = Duration::from_millis(260);

static MEMORY_RELEASES: AtomicUsize = AtomicUsize::new(0);

fn count_memory_release() {
    MEMORY_RELEASES.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_apply_without_a_cold_start_and_broken_uploads_do_not() {
    verdict::loader::set_memory_release(count_memory_release);
    let server = TestServer::start().await;
    server.put("policies/document.yaml", &document_policy("[view]"));
    let blob = server.config("policies/", "updatePollInterval: 250ms\n");
    let config = Config {
        storage: StorageConfig {
            driver: StorageDriver::Blob,
            disk: None,
            blob: Some(blob.clone()),
        },
        ..Config::default()
    };
    let store = S3Store::connect_with(&blob, options()).await.unwrap();
    let (policies, report) = PolicySet::from_store(Store::S3(Box::new(store)), &config)
        .await
        .unwrap();
    assert_eq!(report.policies, 1);
    // Once the files are parsed, once the set is compiled.
    assert_eq!(MEMORY_RELEASES.load(Ordering::SeqCst), 2);
    assert_eq!(effect(&policies, "view"), Effect::Allow);
    assert_eq!(effect(&policies, "edit"), Effect::Deny);

    // Within the interval nothing is listed.
    assert!(!policies.refresh_due());
    assert!(matches!(policies.refresh_if_due().await, Refresh::NotDue));
    tokio::time::sleep(PAST_THE_INTERVAL).await;
    assert!(policies.refresh_due());
    assert!(matches!(
        policies.refresh_if_due().await,
        Refresh::Unchanged
    ));
    assert!(!policies.refresh_due());

    // A new version of the policy is served after the next check.
    server.put("policies/document.yaml", &document_policy("[view, edit]"));
    tokio::time::sleep(PAST_THE_INTERVAL).await;
    let refresh = policies.refresh_if_due().await;
    assert!(matches!(refresh, Refresh::Reloaded(_)), "{refresh:?}");
    assert_eq!(effect(&policies, "edit"), Effect::Allow);
    assert_eq!(MEMORY_RELEASES.load(Ordering::SeqCst), 4);

    // A broken upload is reported and the last good set stays in service.
    server.put(
        "policies/document.yaml",
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy: [broken\n",
    );
    tokio::time::sleep(PAST_THE_INTERVAL).await;
    match policies.refresh_if_due().await {
        Refresh::Failed(err) => {
            let text = err.to_string();
            assert!(
                text.contains("policies/document.yaml") || text.contains("document.yaml"),
                "{text}"
            );
        }
        other => panic!("expected a failed reload, got {other:?}"),
    }
    assert_eq!(effect(&policies, "edit"), Effect::Allow);
    // The broken revision is not recompiled on every call.
    tokio::time::sleep(PAST_THE_INTERVAL).await;
    assert!(matches!(
        policies.refresh_if_due().await,
        Refresh::Unchanged
    ));

    // Fixing the file is picked up again.
    server.put("policies/document.yaml", &document_policy("[view]"));
    tokio::time::sleep(PAST_THE_INTERVAL).await;
    assert!(matches!(
        policies.refresh_if_due().await,
        Refresh::Reloaded(_)
    ));
    assert_eq!(effect(&policies, "edit"), Effect::Deny);
}
