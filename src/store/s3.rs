//! The S3 store: policies under a bucket prefix.
//!
//! A cold start is one paginated `ListObjectsV2` loop followed by concurrent
//! `GetObject`s of exactly the files Cerbos would read (policies and schemas);
//! test suites, hidden files and other extensions are never downloaded. The
//! revision token is a hash of the listed keys and ETags of those files, so a
//! warm function can tell whether anything changed with a listing alone.
//!
//! The client is built by hand rather than through `aws_config::load_defaults`
//! because the default chain probes profile files and IMDS, which costs cold
//! start time that a Lambda (whose credentials are in the environment) never
//! needs.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedCredentialsProvider, StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;
use tokio::task::JoinSet;

use super::{classify, FileRole, Snapshot, StoreError, StoreFile, SCHEMA_FOLDER};
use crate::config::BlobConfig;

/// Per-request timeout when `requestTimeout` is not set (Cerbos's default).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per S3 request, the first one included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// `GetObject`s in flight during a load.
pub const DEFAULT_FETCH_CONCURRENCY: usize = 32;
/// Region used to sign requests when neither the config nor the environment names one.
const FALLBACK_REGION: &str = "us-east-1";

/// Access keys given explicitly instead of through the AWS credential chain.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, present for the temporary credentials of a Lambda role.
    pub session_token: Option<String>,
}

// Secrets must never reach a log line through `{:?}`.
impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Client settings that come from the environment rather than `config.yaml`.
///
/// [`S3Store::connect`] fills them from the process environment; tests and
/// tools build them explicitly and call [`S3Store::connect_with`], which reads
/// no environment variable at all.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Region used when the bucket URL and `blob.region` name none.
    pub region: Option<String>,
    /// Endpoint used when `blob.endpoint` (or `?endpoint=`) is not set.
    pub endpoint: Option<String>,
    /// Explicit credentials; `None` falls back to the AWS default credential chain.
    pub credentials: Option<StaticCredentials>,
    /// Attempts per request, the first one included (at least 1).
    pub max_attempts: u32,
    /// Base of the SDK's exponential, jittered backoff between attempts.
    pub initial_backoff: Duration,
    /// `max-keys` of each `ListObjectsV2` page; `None` lets the server choose (1,000 on S3).
    pub page_size: Option<i32>,
    /// `GetObject`s in flight during a load (at least 1).
    pub fetch_concurrency: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            region: None,
            endpoint: None,
            credentials: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: Duration::from_secs(1),
            page_size: None,
            fetch_concurrency: DEFAULT_FETCH_CONCURRENCY,
        }
    }
}

impl ConnectOptions {
    /// Reads the standard AWS variables from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads the standard AWS variables through `lookup`: `AWS_REGION` (else
    /// `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL_S3` (else `AWS_ENDPOINT_URL`),
    /// and `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`).
    /// Empty values count as unset.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let credentials = match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => Some(StaticCredentials {
                access_key_id,
                secret_access_key,
                session_token: get("AWS_SESSION_TOKEN"),
            }),
            _ => None,
        };
        ConnectOptions {
            region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
            endpoint: get("AWS_ENDPOINT_URL_S3").or_else(|| get("AWS_ENDPOINT_URL")),
            credentials,
            ..ConnectOptions::default()
        }
    }
}

/// How long the last [`S3Store::load`] took, for the cold-start log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadTimings {
    /// Time spent in the `ListObjectsV2` page loop.
    pub list: Duration,
    /// Time spent downloading the wanted objects.
    pub fetch: Duration,
    /// `ListObjectsV2` pages read.
    pub pages: u32,
    /// Objects listed under the prefix, skipped ones included.
    pub listed: usize,
    /// Objects downloaded (policies and schemas).
    pub fetched: usize,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// Policies under an S3 bucket prefix.
#[derive(Debug)]
pub struct S3Store {
    client: Client,
    target: Arc<Target>,
    allow_empty: bool,
    page_size: Option<i32>,
    fetch_concurrency: usize,
    last_timings: Mutex<Option<LoadTimings>>,
}

/// What every error message needs to name, shared with the fetch tasks.
#[derive(Debug)]
struct Target {
    bucket: String,
    prefix: String,
    region: String,
    endpoint: String,
    request_timeout: Duration,
    max_attempts: u32,
}

/// One object the listing says should be downloaded.
#[derive(Debug)]
struct WantedObject {
    key: String,
    name: String,
    role: FileRole,
}

/// The result of one `ListObjectsV2` page loop.
#[derive(Debug)]
struct Listing {
    wanted: Vec<WantedObject>,
    revision: String,
    pages: u32,
    listed: usize,
}

impl S3Store {
    /// Builds the client from `config` and the Lambda environment
    /// (see [`ConnectOptions::from_env`]). No request is sent yet.
    pub async fn connect(config: &BlobConfig) -> Result<S3Store, StoreError> {
        Self::connect_with(config, ConnectOptions::from_env()).await
    }

    /// Builds the client from `config` and explicit `options`, reading no
    /// environment variable. `config` wins over `options` for the region and
    /// the endpoint. Path-style addressing is used whenever an endpoint is set.
    pub async fn connect_with(
        config: &BlobConfig,
        options: ConnectOptions,
    ) -> Result<S3Store, StoreError> {
        let prefix = normalize_prefix(&config.prefix);
        let location = config.location().map_err(|message| StoreError::S3 {
            bucket: config.bucket.clone(),
            prefix: prefix.clone(),
            message: format!("invalid bucket setting: {message}"),
        })?;
        let region = location
            .region
            .or(options.region)
            .unwrap_or_else(|| FALLBACK_REGION.to_string());
        let endpoint = location
            .endpoint
            .or(options.endpoint)
            .map(|url| with_scheme(&url));
        let request_timeout = config
            .request_timeout
            .filter(|timeout| !timeout.is_zero())
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let max_attempts = options.max_attempts.max(1);

        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(max_attempts)
                    .with_initial_backoff(options.initial_backoff),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(request_timeout)
                    .operation_attempt_timeout(request_timeout)
                    .build(),
            )
            // A cold start sends one GetObject per policy, so per-request work
            // adds up. Policy files are small and parsed in full (a corrupt one
            // fails to parse); the body read has its own requestTimeout bound.
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
        builder = match options.credentials {
            Some(keys) => builder.credentials_provider(Credentials::new(
                keys.access_key_id,
                keys.secret_access_key,
                keys.session_token,
                None,
                "verdict-static",
            )),
            // Outside Lambda (SnapStart, containers, a developer's profile) the
            // usual chain is worth its probes; it only runs on the first request.
            None => {
                let chain =
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .region(Region::new(region.clone()))
                        .build()
                        .await;
                builder.credentials_provider(SharedCredentialsProvider::new(chain))
            }
        };
        if let Some(url) = &endpoint {
            builder = builder.endpoint_url(url).force_path_style(true);
        }

        let endpoint_label =
            endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        Ok(S3Store {
            client: Client::from_conf(builder.build()),
            target: Arc::new(Target {
                bucket: location.bucket,
                prefix,
                region,
                endpoint: endpoint_label,
                request_timeout,
                max_attempts,
            }),
            allow_empty: config.allow_empty,
            page_size: options.page_size,
            fetch_concurrency: options.fetch_concurrency.max(1),
            last_timings: Mutex::new(None),
        })
    }

    /// `s3://bucket/prefix`, for log lines.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.target.bucket, self.target.prefix)
    }

    /// Lists the prefix and downloads every policy and schema once.
    ///
    /// The revision is the one [`S3Store::current_revision`] would return for
    /// the same listing. An object deleted between the listing and its
    /// download is skipped; the next refresh check sees the change. Timings
    /// are kept for [`S3Store::last_timings`].
    pub async fn load(&self) -> Result<Snapshot, StoreError> {
        self.load_streaming(&mut |_| {}).await
    }

    /// Like [`S3Store::load`], also handing each policy file to `on_policy`
    /// as soon as it is downloaded, in arrival order, so the caller can parse
    /// while the rest is still downloading.
    pub async fn load_streaming(
        &self,
        on_policy: &mut (dyn FnMut(StoreFile) + Send),
    ) -> Result<Snapshot, StoreError> {
        let list_started = Instant::now();
        let listing = self.list().await?;
        let list_time = list_started.elapsed();

        if !self.allow_empty && !listing.wanted.iter().any(|o| o.role == FileRole::Policy) {
            return Err(StoreError::Empty {
                location: self.location(),
            });
        }

        let fetch_started = Instant::now();
        let contents = self.fetch_all(&listing.wanted, on_policy).await?;
        let fetch_time = fetch_started.elapsed();

        let mut snapshot = Snapshot {
            revision: listing.revision,
            ..Snapshot::default()
        };
        let mut fetched = 0;
        let mut bytes_total = 0u64;
        for (object, bytes) in listing.wanted.into_iter().zip(contents) {
            let Some(bytes) = bytes else { continue };
            fetched += 1;
            bytes_total += bytes.len() as u64;
            if object.role == FileRole::Schema {
                snapshot.schemas.push(StoreFile {
                    name: schema_name(&object.name),
                    bytes,
                });
            } else {
                snapshot.policies.push(StoreFile {
                    name: object.name,
                    bytes,
                });
            }
        }

        // S3 lists in key order, but S3-compatible servers need not; compilers want stable input.
        snapshot.policies.sort_by(|a, b| a.name.cmp(&b.name));
        snapshot.schemas.sort_by(|a, b| a.name.cmp(&b.name));

        let timings = LoadTimings {
            list: list_time,
            fetch: fetch_time,
            pages: listing.pages,
            listed: listing.listed,
            fetched,
            bytes: bytes_total,
        };
        tracing::info!(
            location = %self.location(),
            pages = timings.pages,
            listed = timings.listed,
            fetched = timings.fetched,
            bytes = timings.bytes,
            list_ms = millis(timings.list),
            fetch_ms = millis(timings.fetch),
            revision = %snapshot.revision,
            "loaded policies from S3"
        );
        *self
            .last_timings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(timings);
        Ok(snapshot)
    }

    /// Lists the prefix (one `ListObjectsV2` page loop, no download) and
    /// returns the revision token, to compare with [`Snapshot::revision`].
    pub async fn current_revision(&self) -> Result<String, StoreError> {
        let started = Instant::now();
        let listing = self.list().await?;
        tracing::debug!(
            location = %self.location(),
            pages = listing.pages,
            listed = listing.listed,
            list_ms = millis(started.elapsed()),
            revision = %listing.revision,
            "listed policies in S3"
        );
        Ok(listing.revision)
    }

    /// Timings of the last successful [`S3Store::load`], if any.
    pub fn last_timings(&self) -> Option<LoadTimings> {
        *self
            .last_timings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        let target = &self.target;
        let prefix = Some(target.prefix.clone()).filter(|p| !p.is_empty());
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&target.bucket)
            .set_prefix(prefix)
            .set_max_keys(self.page_size)
            .into_paginator()
            .send();
        let mut listing = Listing {
            wanted: Vec::new(),
            revision: String::new(),
            pages: 0,
            listed: 0,
        };
        let mut revision = Fnv64::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| target.error("ListObjectsV2", &target.prefix, &err))?;
            listing.pages += 1;
            for object in page.contents() {
                listing.listed += 1;
                let Some(key) = object.key() else { continue };
                let Some(name) = key.strip_prefix(target.prefix.as_str()) else {
                    continue;
                };
                let role = classify(name);
                if !matches!(role, FileRole::Policy | FileRole::Schema) {
                    continue;
                }
                revision.write(key.as_bytes());
                match object.e_tag() {
                    Some(etag) => revision.write(etag.as_bytes()),
                    // Some S3-compatible servers list no ETags; size and mtime
                    // still change when the object is overwritten.
                    None => {
                        let modified = object.last_modified().map(|t| t.as_nanos()).unwrap_or(0);
                        revision.write(modified.to_string().as_bytes());
                    }
                }
                revision.write(object.size().unwrap_or(-1).to_string().as_bytes());
                listing.wanted.push(WantedObject {
                    key: key.to_string(),
                    name: name.to_string(),
                    role,
                });
            }
        }
        listing.revision = revision.finish();
        Ok(listing)
    }

    /// Downloads `wanted` with at most `fetch_concurrency` requests in flight,
    /// returning the bodies in the same order (`None` for objects that vanished).
    async fn fetch_all(
        &self,
        wanted: &[WantedObject],
        on_policy: &mut (dyn FnMut(StoreFile) + Send),
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut bodies: Vec<Option<Vec<u8>>> = vec![None; wanted.len()];
        let mut queue = wanted.iter().enumerate();
        let mut tasks = JoinSet::new();
        loop {
            while tasks.len() < self.fetch_concurrency {
                let Some((index, object)) = queue.next() else {
                    break;
                };
                let client = self.client.clone();
                let target = Arc::clone(&self.target);
                let key = object.key.clone();
                tasks.spawn(async move { (index, fetch_one(&client, &target, &key).await) });
            }
            // Returning early drops `tasks`, which aborts the downloads still running.
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let (index, body) = joined.map_err(|err| StoreError::S3 {
                bucket: self.target.bucket.clone(),
                prefix: self.target.prefix.clone(),
                message: format!("download task failed: {err}"),
            })?;
            let body = body?;
            if let (Some(bytes), Some(object)) = (&body, wanted.get(index)) {
                if object.role == FileRole::Policy {
                    on_policy(StoreFile {
                        name: object.name.clone(),
                        bytes: bytes.clone(),
                    });
                }
            }
            bodies[index] = body;
        }
        Ok(bodies)
    }
}

async fn fetch_one(
    client: &Client,
    target: &Target,
    key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let sent = client
        .get_object()
        .bucket(&target.bucket)
        .key(key)
        .send()
        .await;
    let output = match sent {
        Ok(output) => output,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
            tracing::warn!(bucket = %target.bucket, key, "object vanished between listing and download; skipped");
            return Ok(None);
        }
        Err(err) => return Err(target.error("GetObject", key, &err)),
    };
    // The SDK's timeouts end when the headers arrive; the body needs its own bound.
    let collected = tokio::time::timeout(target.request_timeout, output.body.collect()).await;
    match collected {
        Ok(Ok(body)) => Ok(Some(body.into_bytes().to_vec())),
        Ok(Err(err)) => Err(target.failure(
            key,
            format!(
                "GetObject failed while reading the body: {}",
                error_chain(&err)
            ),
        )),
        Err(_) => Err(target.failure(
            key,
            format!(
                "GetObject failed: body not received within requestTimeout ({:?})",
                target.request_timeout
            ),
        )),
    }
}

impl Target {
    fn failure(&self, prefix_or_key: &str, message: String) -> StoreError {
        StoreError::S3 {
            bucket: self.bucket.clone(),
            prefix: prefix_or_key.to_string(),
            message,
        }
    }

    /// Turns an SDK failure into a message that says what to fix.
    fn error<E>(
        &self,
        operation: &str,
        prefix_or_key: &str,
        err: &SdkError<E, HttpResponse>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let attempts = self.max_attempts;
        let timeout = self.request_timeout;
        let endpoint = &self.endpoint;
        let message = match err {
            SdkError::TimeoutError(_) => format!(
                "{operation} failed: no response from {endpoint} within requestTimeout ({timeout:?}); gave up after {attempts} attempts"
            ),
            SdkError::DispatchFailure(failure) if failure.is_timeout() => format!(
                "{operation} failed: could not connect to {endpoint} within requestTimeout ({timeout:?}); gave up after {attempts} attempts"
            ),
            SdkError::DispatchFailure(failure) if failure.is_io() => format!(
                "{operation} failed: cannot reach {endpoint}: {}; gave up after {attempts} attempts",
                root_cause(err)
            ),
            SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
                self.describe_response(operation, err)
            }
            _ => format!(
                "{operation} failed: request to {endpoint} failed: {}",
                error_chain(err)
            ),
        };
        self.failure(prefix_or_key, message)
    }

    fn describe_response<E>(&self, operation: &str, err: &SdkError<E, HttpResponse>) -> String
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let bucket = &self.bucket;
        let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
        let code = err.as_service_error().and_then(|e| e.code()).unwrap_or("");
        let detail = err
            .as_service_error()
            .and_then(|e| e.message())
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let attempts = self.max_attempts;
        match (status, code) {
            (_, "NoSuchBucket") | (404, "") => {
                format!("{operation} failed: bucket {bucket} does not exist (NoSuchBucket)")
            }
            (
                _,
                "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken"
                | "NotSignedUp",
            ) => format!(
                "{operation} failed: access denied, the credentials were rejected (HTTP {status} {code}){detail}"
            ),
            (403, _) | (_, "AccessDenied") => format!(
                "{operation} failed: access denied (HTTP 403 {code}){detail}; the role needs s3:ListBucket on arn:aws:s3:::{bucket} and s3:GetObject on arn:aws:s3:::{bucket}/{}*",
                self.prefix
            ),
            (301, _) | (_, "PermanentRedirect" | "AuthorizationHeaderMalformed") => {
                let actual = err
                    .raw_response()
                    .and_then(|r| r.headers().get("x-amz-bucket-region"))
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default();
                format!(
                    "{operation} failed: bucket {bucket} is in another region{actual} than {} (HTTP {status} {code}); set ?region= in the bucket URL or blob.region",
                    self.region
                )
            }
            (429 | 503, _)
            | (_, "SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequests") => {
                format!("{operation} failed: throttled (HTTP {status} {code}); gave up after {attempts} attempts")
            }
            _ => format!(
                "{operation} failed: HTTP {status} {code}{detail}: {}",
                error_chain(err)
            ),
        }
    }
}

/// Makes `prefix` a folder: `policies` and `/policies/` both mean `policies/`,
/// so `policies-old/` is not picked up and names never start with `/`.
fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_start_matches('/');
    if trimmed.is_empty() || trimmed.ends_with('/') {
        trimmed.to_string()
    } else {
        format!("{trimmed}/")
    }
}

/// Cerbos's URLs allow `endpoint=host:port`; the SDK needs a full URL.
fn with_scheme(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("https://{endpoint}")
    }
}

/// `_schemas/a/b.json` is referenced by policies as `a/b.json`.
fn schema_name(name: &str) -> String {
    name.strip_prefix(SCHEMA_FOLDER)
        .unwrap_or(name)
        .trim_start_matches('/')
        .to_string()
}

/// The innermost error, e.g. `Connection refused (os error 111)`: the SDK's
/// wrappers above it add words but no information.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = err;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

/// Every message of the error's source chain, without the SDK's `Debug` dump.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut messages = vec![err.to_string()];
    let mut current = err;
    while let Some(source) = current.source() {
        let message = source.to_string();
        if !messages.last().is_some_and(|last| last.contains(&message)) {
            messages.push(message);
        }
        current = source;
    }
    messages.join(": ")
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// FNV-1a, 64 bits: stable across processes and Rust versions, unlike
/// `DefaultHasher`, so revisions in logs of different cold starts compare.
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    /// Hashes `bytes` followed by a separator, so ("ab","c") and ("a","bc") differ.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes.iter().chain(std::iter::once(&0xff)) {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_folders() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix("policies"), "policies/");
        assert_eq!(normalize_prefix("/policies/"), "policies/");
        assert_eq!(normalize_prefix("a/b"), "a/b/");
    }

    #[test]
    fn endpoints_get_a_scheme() {
        assert_eq!(with_scheme("minio:9000"), "https://minio:9000");
        assert_eq!(
            with_scheme("http://127.0.0.1:9000"),
            "http://127.0.0.1:9000"
        );
    }

    #[test]
    fn schema_names_are_relative_to_the_schema_folder() {
        assert_eq!(schema_name("_schemas/principal.json"), "principal.json");
        assert_eq!(schema_name("_schemas/nested/r.json"), "nested/r.json");
    }

    #[test]
    fn env_lookup_follows_aws_precedence() {
        let env = |name: &str| {
            match name {
                "AWS_DEFAULT_REGION" => Some("eu-west-1"),
                "AWS_ENDPOINT_URL" => Some("http://global:1"),
                "AWS_ENDPOINT_URL_S3" => Some("http://s3-only:2"),
                "AWS_ACCESS_KEY_ID" => Some("AKID"),
                "AWS_SECRET_ACCESS_KEY" => Some("SECRET"),
                "AWS_SESSION_TOKEN" => Some(""),
                _ => None,
            }
            .map(String::from)
        };
        let options = ConnectOptions::from_lookup(&env);
        assert_eq!(options.region.as_deref(), Some("eu-west-1"));
        assert_eq!(options.endpoint.as_deref(), Some("http://s3-only:2"));
        let keys = options.credentials.unwrap();
        assert_eq!(keys.access_key_id, "AKID");
        assert_eq!(keys.session_token, None);
        assert!(!format!("{keys:?}").contains("SECRET"));

        let partial = ConnectOptions::from_lookup(&|name: &str| {
            (name == "AWS_ACCESS_KEY_ID").then(|| "AKID".to_string())
        });
        assert!(partial.credentials.is_none());
    }

    // The Lambda handler shares the store across invocations and awaits its
    // futures inside `Send` ones; this fails to compile if that breaks.
    #[allow(dead_code)]
    fn store_and_futures_are_send(store: &S3Store) {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: T) {}
        send_sync::<S3Store>();
        send(store.load());
        send(store.current_revision());
    }

    #[test]
    fn error_chain_skips_repeated_messages() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = std::io::Error::other(inner);
        assert_eq!(error_chain(&outer), "refused");
        assert_eq!(root_cause(&outer), "refused");
    }

    #[test]
    fn revision_hash_separates_fields() {
        let mut one = Fnv64::new();
        one.write(b"ab");
        one.write(b"c");
        let mut two = Fnv64::new();
        two.write(b"a");
        two.write(b"bc");
        assert_ne!(one.finish(), two.finish());
    }
}
