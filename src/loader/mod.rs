//! From config to a compiled rule index, once at cold start and again when
//! the store changes.
//!
//! This is the one place the stages meet: the configured store is read,
//! every file parsed and the whole set compiled. A set with any error is
//! rejected as a whole. With `updatePollInterval`, the first call after the
//! interval lists the store (one ListObjectsV2 loop for S3); if the revision
//! changed it reloads before answering and swaps the index atomically, and a
//! failed reload keeps the last good index.

pub mod err;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::compile::{compile, EngineSettings, RuleIndex};
use crate::config::{Config, StorageDriver};
use crate::policy::{ParsePool, Policy, PolicyError};
use crate::store::s3::S3Store;
use crate::store::{disk, Snapshot};
pub use err::LoadError;

/// Where policies are read from.
pub enum Store {
    /// A local folder.
    Disk(PathBuf),
    /// An S3 prefix.
    S3(Box<S3Store>),
}

impl Store {
    /// Opens the store the config names.
    pub async fn open(config: &Config) -> Result<Store, LoadError> {
        match config.storage.driver {
            StorageDriver::Disk => Ok(Store::Disk(
                config.storage.disk.clone().unwrap_or_default().directory,
            )),
            StorageDriver::Blob => {
                let blob = config.storage.blob.clone().ok_or_else(|| {
                    LoadError::Store(crate::store::StoreError::Empty {
                        location: "storage.blob is not configured".to_string(),
                    })
                })?;
                Ok(Store::S3(Box::new(S3Store::connect(&blob).await?)))
            }
        }
    }

    /// A human description, e.g. `s3://bucket/prefix` or the folder.
    pub fn location(&self) -> String {
        match self {
            Store::Disk(dir) => dir.display().to_string(),
            Store::S3(s3) => s3.location(),
        }
    }

    /// Reads the whole store and parses its policies. From S3, files are
    /// parsed as they arrive, while later ones are still downloading.
    async fn read_and_parse(&self) -> Result<(Snapshot, Parsed), LoadError> {
        Ok(match self {
            Store::Disk(dir) => {
                let snapshot = disk::load(dir)?;
                let parsed = crate::policy::parse_set(&snapshot.policies);
                (snapshot, parsed)
            }
            Store::S3(s3) => {
                let mut pool = ParsePool::start();
                let snapshot = s3.load_streaming(&mut |file| pool.push(file)).await;
                let parsed = pool.finish();
                (snapshot?, parsed)
            }
        })
    }

    async fn revision(&self) -> Result<String, LoadError> {
        Ok(match self {
            Store::Disk(dir) => disk::load(dir)?.revision,
            Store::S3(s3) => s3.current_revision().await?,
        })
    }
}

/// How the process hands memory it has freed back to the OS; see
/// [`set_memory_release`].
static RELEASE_FREED_MEMORY: OnceLock<fn()> = OnceLock::new();

/// Registers `release`, called twice per load: once the files are parsed
/// (their bytes and the parsers' temporaries are gone) and once the set is
/// compiled (the parsed model is gone). The binary chooses the allocator, so
/// it says how; an allocator that keeps freed pages for reuse otherwise
/// holds them until later, which adds megabytes to a cold start's peak RSS.
/// Only the first registration counts.
pub fn set_memory_release(release: fn()) {
    let _ = RELEASE_FREED_MEMORY.set(release);
}

fn release_freed_memory() {
    if let Some(release) = RELEASE_FREED_MEMORY.get() {
        release();
    }
}

/// What a load did, for the cold-start log line.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Policies compiled.
    pub policies: usize,
    /// Rules across them.
    pub rules: usize,
    /// Distinct CEL expressions compiled.
    pub expressions: usize,
    /// Time reading the store and parsing its files (which overlap on S3).
    pub load: Duration,
    /// Time compiling the parsed set.
    pub compile: Duration,
    /// The store's revision token.
    pub revision: String,
}

/// Parsed policies and the parse errors of a set.
type Parsed = (Vec<Policy>, Vec<PolicyError>);

/// Parses and compiles a snapshot.
pub fn build(snapshot: &Snapshot, settings: EngineSettings) -> Result<RuleIndex, LoadError> {
    compile_parsed(
        crate::policy::parse_set(&snapshot.policies),
        snapshot,
        settings,
    )
}

/// Compiles an already parsed set; any parse error rejects the whole set.
fn compile_parsed(
    (policies, errors): Parsed,
    snapshot: &Snapshot,
    settings: EngineSettings,
) -> Result<RuleIndex, LoadError> {
    if !errors.is_empty() {
        return Err(LoadError::Parse(errors));
    }
    Ok(compile(&policies, &snapshot.schemas, settings)?)
}

/// Reads and compiles the whole set.
pub async fn load(
    store: &Store,
    settings: EngineSettings,
) -> Result<(RuleIndex, LoadReport), LoadError> {
    let started = Instant::now();
    let (mut snapshot, parsed) = store.read_and_parse().await?;
    // Parsed policies keep their own text; the raw bytes would only add to
    // the peak memory of the compile that follows.
    snapshot.policies = Vec::new();
    release_freed_memory();
    let loaded = Instant::now();
    let index = compile_parsed(parsed, &snapshot, settings)?;
    release_freed_memory();
    let stats = index.stats();
    Ok((
        index,
        LoadReport {
            policies: stats.policies,
            rules: stats.rules,
            expressions: stats.expressions,
            load: loaded - started,
            compile: loaded.elapsed(),
            revision: snapshot.revision,
        },
    ))
}

/// The live policy set of a warm function.
pub struct PolicySet {
    store: Store,
    settings: EngineSettings,
    poll_interval: Option<Duration>,
    current: RwLock<Arc<RuleIndex>>,
    state: tokio::sync::Mutex<RefreshState>,
}

struct RefreshState {
    revision: String,
    last_check: Instant,
}

/// What a refresh check found.
#[derive(Debug)]
pub enum Refresh {
    /// Polling is off or the interval has not elapsed.
    NotDue,
    /// The store did not change.
    Unchanged,
    /// A new set is being served.
    Reloaded(LoadReport),
    /// The store changed but the new set failed; the last good set stays.
    Failed(LoadError),
}

impl PolicySet {
    /// Loads the set at cold start.
    pub async fn open(config: &Config) -> Result<(PolicySet, LoadReport), LoadError> {
        PolicySet::from_store(Store::open(config).await?, config).await
    }

    /// Loads the set from an already opened store.
    pub async fn from_store(
        store: Store,
        config: &Config,
    ) -> Result<(PolicySet, LoadReport), LoadError> {
        let settings = EngineSettings::from(config);
        let (index, report) = load(&store, settings.clone()).await?;
        let poll_interval = config
            .storage
            .blob
            .as_ref()
            .and_then(|b| b.update_poll_interval)
            .filter(|d| !d.is_zero() && config.storage.driver == StorageDriver::Blob);
        Ok((
            PolicySet {
                store,
                settings,
                poll_interval,
                current: RwLock::new(Arc::new(index)),
                state: tokio::sync::Mutex::new(RefreshState {
                    revision: report.revision.clone(),
                    last_check: Instant::now(),
                }),
            },
            report,
        ))
    }

    /// The index being served.
    pub fn current(&self) -> Arc<RuleIndex> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Where the policies come from.
    pub fn location(&self) -> String {
        self.store.location()
    }

    /// Whether [`PolicySet::refresh_if_due`] would check the store now.
    pub fn refresh_due(&self) -> bool {
        self.poll_interval.is_some_and(|interval| {
            // Held only by a refresh under way, which is due by definition.
            self.state
                .try_lock()
                .map_or(true, |state| state.last_check.elapsed() >= interval)
        })
    }

    /// Checks the store if the poll interval has elapsed and reloads when it
    /// changed. Runs inline: a frozen Lambda has no background timers.
    pub async fn refresh_if_due(&self) -> Refresh {
        let Some(interval) = self.poll_interval else {
            return Refresh::NotDue;
        };
        let mut state = self.state.lock().await;
        if state.last_check.elapsed() < interval {
            return Refresh::NotDue;
        }
        state.last_check = Instant::now();
        let revision = match self.store.revision().await {
            Ok(revision) => revision,
            Err(err) => return Refresh::Failed(err),
        };
        if revision == state.revision {
            return Refresh::Unchanged;
        }
        match load(&self.store, self.settings.clone()).await {
            Ok((index, report)) => {
                state.revision.clone_from(&report.revision);
                match self.current.write() {
                    Ok(mut guard) => *guard = Arc::new(index),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(index),
                }
                Refresh::Reloaded(report)
            }
            Err(err) => {
                // Remember the broken revision so it is not recompiled on every call.
                state.revision = revision;
                Refresh::Failed(err)
            }
        }
    }
}
