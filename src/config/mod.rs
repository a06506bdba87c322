//! `config.yaml`: where policies come from and how the engine behaves.
//!
//! The file follows Cerbos's configuration layout so that an existing Cerbos
//! config can be reused. `${VAR}` and `${VAR:default}` are replaced by
//! environment variables before parsing, which is how the SAM template passes
//! the bucket name in. Unknown keys are errors that name the key; Cerbos's
//! `server` block is accepted and, except for `server.cors`, ignored.

mod duration;
pub mod err;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use duration::parse_duration;
pub use err::ConfigError;

/// The whole configuration, after defaults are applied.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Where the policies live.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Engine behaviour (default version, scope search, globals).
    #[serde(default)]
    pub engine: EngineConfig,
    /// JSON-Schema enforcement of principal and resource attributes.
    #[serde(default)]
    pub schema: SchemaConfig,
    /// Decision logging.
    #[serde(default)]
    pub audit: AuditConfig,
    /// How `auxData` (JWTs) in requests is handled.
    #[serde(default)]
    pub aux_data: AuxDataConfig,
    /// Cerbos's server block: only `cors` is used, the rest is ignored.
    #[serde(default)]
    pub server: Option<ServerConfig>,
}

/// Cerbos's `server:` block. A Lambda has no listener, so only CORS matters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    /// CORS answers for browser clients such as `@cerbos/http`.
    #[serde(default)]
    pub cors: CorsConfig,
    /// Every other key of Cerbos's server block (listen addresses, TLS, ...).
    #[serde(flatten)]
    pub ignored: BTreeMap<String, serde_yaml_ng::Value>,
}

/// CORS settings, as in Cerbos's `server.cors`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsConfig {
    /// Turn CORS headers off entirely.
    #[serde(default)]
    pub disabled: bool,
    /// Origins allowed; `*` or empty allows any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Request headers allowed in preflight answers.
    #[serde(default = "default_cors_headers")]
    pub allowed_headers: Vec<String>,
    /// How long browsers may cache a preflight answer.
    #[serde(default, with = "duration::serde_opt")]
    pub max_age: Option<Duration>,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            disabled: false,
            allowed_origins: Vec::new(),
            allowed_headers: default_cors_headers(),
            max_age: None,
        }
    }
}

fn default_cors_headers() -> Vec<String> {
    [
        "accept",
        "content-type",
        "user-agent",
        "x-requested-with",
        "authorization",
    ]
    .map(String::from)
    .to_vec()
}

/// `storage:`: a local folder or an S3 prefix.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageConfig {
    /// `disk` or `blob`.
    #[serde(default)]
    pub driver: StorageDriver,
    /// Settings of the disk driver.
    #[serde(default)]
    pub disk: Option<DiskConfig>,
    /// Settings of the blob (S3) driver.
    #[serde(default)]
    pub blob: Option<BlobConfig>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            driver: StorageDriver::Disk,
            disk: Some(DiskConfig::default()),
            blob: None,
        }
    }
}

/// Which store to load policies from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageDriver {
    /// A local directory.
    #[default]
    Disk,
    /// An S3 bucket and prefix.
    Blob,
}

/// `storage.disk`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskConfig {
    /// The policy folder, relative to the working directory.
    #[serde(default = "default_policy_dir")]
    pub directory: PathBuf,
    /// Accepted for Cerbos compatibility; a Lambda never watches files.
    #[serde(default)]
    pub watch_for_changes: bool,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            directory: default_policy_dir(),
            watch_for_changes: false,
        }
    }
}

fn default_policy_dir() -> PathBuf {
    PathBuf::from("policies")
}

/// `storage.blob`, in either Cerbos's form (`bucket: s3://name?region=r`)
/// or the Lambda guide's form (`driver: s3`, `bucket: name`, `region: r`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlobConfig {
    /// `s3://bucket?region=...` or a bare bucket name.
    pub bucket: String,
    /// `s3` in the guide's form; any other value is an error.
    #[serde(default)]
    pub driver: Option<String>,
    /// The AWS region, when not given in the bucket URL.
    #[serde(default)]
    pub region: Option<String>,
    /// Key prefix under which policies live.
    #[serde(default)]
    pub prefix: String,
    /// An S3-compatible endpoint (MinIO, moto, s3s); path-style addressing is used with it.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// How often a warm function checks for changed policies; zero loads once.
    #[serde(default, with = "duration::serde_opt")]
    pub update_poll_interval: Option<Duration>,
    /// Timeout of each S3 request.
    #[serde(default, with = "duration::serde_opt")]
    pub request_timeout: Option<Duration>,
    /// Accepted for Cerbos compatibility: Cerbos clones the bucket to disk, Verdict keeps it in memory.
    #[serde(default)]
    pub work_dir: Option<String>,
    /// Accepted for Cerbos compatibility: the whole load is bounded by `requestTimeout` per request.
    #[serde(default, with = "duration::serde_opt")]
    pub download_timeout: Option<Duration>,
    /// Serve an empty policy set instead of failing when the prefix holds no policies.
    #[serde(default)]
    pub allow_empty: bool,
}

/// The bucket coordinates resolved from either config form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLocation {
    /// Bucket name.
    pub bucket: String,
    /// Region, when known.
    pub region: Option<String>,
    /// Endpoint override, when set in the URL or config.
    pub endpoint: Option<String>,
}

impl BlobConfig {
    /// Resolves the bucket name, region and endpoint from the config forms.
    pub fn location(&self) -> Result<BucketLocation, String> {
        if let Some(driver) = &self.driver {
            if driver != "s3" {
                return Err(format!(
                    "unsupported blob driver {driver:?}: only s3 is supported"
                ));
            }
        }
        let (bucket, mut region, mut endpoint) = match self.bucket.strip_prefix("s3://") {
            Some(rest) => parse_s3_url(rest)?,
            None if self.bucket.contains("://") => {
                return Err(format!(
                    "bucket {:?}: only s3:// URLs are supported",
                    self.bucket
                ))
            }
            None => (self.bucket.clone(), None, None),
        };
        if bucket.is_empty() {
            return Err("bucket name is empty".to_string());
        }
        if self.region.is_some() {
            region.clone_from(&self.region);
        }
        if self.endpoint.is_some() {
            endpoint.clone_from(&self.endpoint);
        }
        Ok(BucketLocation {
            bucket,
            region,
            endpoint,
        })
    }
}

type BucketParts = (String, Option<String>, Option<String>);

fn parse_s3_url(rest: &str) -> Result<BucketParts, String> {
    let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut region = None;
    let mut endpoint: Option<String> = None;
    let mut plain_http = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "region" => region = Some(value.to_string()),
            "endpoint" => endpoint = Some(value.to_string()),
            "disableSSL" => plain_http = value == "true",
            // Cerbos's gocloud URLs accept these; path-style is implied by an endpoint here.
            "s3ForcePathStyle" | "hostname_immutable" | "awssdk" => {}
            other => return Err(format!("unknown s3 URL parameter {other:?}")),
        }
    }
    // gocloud's `endpoint=host:port&disableSSL=true` means plain HTTP.
    let endpoint = endpoint.map(|e| {
        if plain_http && !e.contains("://") {
            format!("http://{e}")
        } else {
            e
        }
    });
    Ok((bucket.trim_end_matches('/').to_string(), region, endpoint))
}

/// `engine:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EngineConfig {
    /// Version used when a request names none.
    #[serde(default = "default_version")]
    pub default_policy_version: String,
    /// Fall back to the nearest existing ancestor scope when the requested one has no policy.
    #[serde(default)]
    pub lenient_scope_search: bool,
    /// Values available to conditions as `G`/`globals`.
    #[serde(default)]
    pub globals: BTreeMap<String, serde_json::Value>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            default_policy_version: default_version(),
            lenient_scope_search: false,
            globals: BTreeMap::new(),
        }
    }
}

fn default_version() -> String {
    "default".to_string()
}

/// `schema:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchemaConfig {
    /// What to do with attributes that fail their policy's JSON Schema.
    #[serde(default)]
    pub enforcement: SchemaEnforcement,
}

/// How strictly attribute schemas are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaEnforcement {
    /// Schemas are not checked.
    #[default]
    None,
    /// Violations are reported in `validationErrors`; decisions are unchanged.
    Warn,
    /// Violations are reported and every action is denied.
    Reject,
}

/// `audit:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditConfig {
    /// Master switch.
    #[serde(default)]
    pub enabled: bool,
    /// Accepted for Cerbos compatibility; the gateway already keeps access logs.
    #[serde(default)]
    pub access_logs_enabled: bool,
    /// Log one line per check with its decisions.
    #[serde(default)]
    pub decision_logs_enabled: bool,
    /// Only these request metadata keys (headers) are logged.
    #[serde(default)]
    pub include_metadata_keys: Vec<String>,
    /// These request metadata keys are never logged.
    #[serde(default)]
    pub exclude_metadata_keys: Vec<String>,
    /// Cerbos's audit backend; logs always go to stdout (CloudWatch) here.
    #[serde(default)]
    pub backend: Option<String>,
}

/// `auxData:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuxDataConfig {
    /// JWT handling.
    #[serde(default)]
    pub jwt: JwtConfig,
}

/// `auxData.jwt:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtConfig {
    /// Key sets used to verify tokens.
    #[serde(default)]
    pub key_sets: Vec<KeySet>,
    /// Decode tokens without verifying them (development only).
    #[serde(default)]
    pub disable_verification: bool,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(default, with = "duration::serde_opt")]
    pub acceptable_time_skew: Option<Duration>,
    /// Accepted for Cerbos compatibility.
    #[serde(default)]
    pub cache_size: Option<u64>,
}

/// One key set of `auxData.jwt.keySets`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeySet {
    /// Name that requests refer to with `keySetId`.
    pub id: String,
    /// Keys embedded in the config or read from a file.
    #[serde(default)]
    pub local: Option<LocalKeySet>,
    /// A JWKS URL; not fetched from a Lambda at check time, so it is an error here.
    #[serde(default)]
    pub remote: Option<serde_yaml_ng::Value>,
}

/// `keySets[].local`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalKeySet {
    /// Base64-encoded JWKS or PEM data.
    #[serde(default)]
    pub data: Option<String>,
    /// Path to a JWKS or PEM file.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Whether `data`/`file` is PEM rather than JWKS.
    #[serde(default)]
    pub pem: bool,
}

impl Config {
    /// Loads the config from the first path that exists: `explicit`
    /// (`--config`), `VERDICT_CONFIG`, `./config.yaml`, then
    /// `$LAMBDA_TASK_ROOT/config.yaml`. With none, the embedded default
    /// (disk store on `policies/`) is used.
    pub fn discover(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        if let Some(path) = explicit {
            return Ok((Config::from_file(path)?, Some(path.to_path_buf())));
        }
        if let Some(path) = std::env::var_os("VERDICT_CONFIG").filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            return Ok((Config::from_file(&path)?, Some(path)));
        }
        let mut candidates = vec![PathBuf::from("config.yaml")];
        if let Some(root) = std::env::var_os("LAMBDA_TASK_ROOT") {
            candidates.push(Path::new(&root).join("config.yaml"));
        }
        for path in candidates {
            if path.is_file() {
                return Ok((Config::from_file(&path)?, Some(path)));
            }
        }
        Ok((Config::default(), None))
    }

    /// Reads and parses one config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_yaml(&path.display().to_string(), &text, &|name| {
            std::env::var(name).ok()
        })
    }

    /// Parses config text, resolving `${VAR}` with `lookup`.
    pub fn from_yaml(
        origin: &str,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let expanded = interpolate(origin, text, lookup)?;
        if expanded.trim().is_empty() {
            return Ok(Config::default());
        }
        let config: Config =
            serde_yaml_ng::from_str(&expanded).map_err(|err| invalid(origin, &err))?;
        config.validate(origin)?;
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::BadValue {
            path: origin.to_string(),
            key: key.to_string(),
            message,
        };
        match self.storage.driver {
            StorageDriver::Disk => {}
            StorageDriver::Blob => {
                let blob = self.storage.blob.as_ref().ok_or_else(|| {
                    bad(
                        "storage.blob",
                        "driver is blob but the blob block is missing".to_string(),
                    )
                })?;
                blob.location().map_err(|m| bad("storage.blob.bucket", m))?;
            }
        }
        if self.engine.default_policy_version.is_empty() {
            return Err(bad(
                "engine.defaultPolicyVersion",
                "must not be empty".to_string(),
            ));
        }
        for (i, key_set) in self.aux_data.jwt.key_sets.iter().enumerate() {
            if key_set.remote.is_some() {
                return Err(bad(
                    &format!("auxData.jwt.keySets[{i}].remote"),
                    "remote key sets are not supported: embed the JWKS with local.data or local.file"
                        .to_string(),
                ));
            }
            if key_set.local.is_none() {
                return Err(bad(
                    &format!("auxData.jwt.keySets[{i}]"),
                    "a key set needs a local block".to_string(),
                ));
            }
        }
        Ok(())
    }

    /// The keys of the `server` block that are ignored, for the one warning line.
    pub fn ignored_server_keys(&self) -> Vec<String> {
        self.server
            .as_ref()
            .map(|s| s.ignored.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// CORS settings (defaults when no `server.cors` block is given).
    pub fn cors(&self) -> CorsConfig {
        self.server
            .as_ref()
            .map(|s| s.cors.clone())
            .unwrap_or_default()
    }
}

fn invalid(origin: &str, err: &serde_yaml_ng::Error) -> ConfigError {
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let message = err.to_string();
    // serde_yaml_ng appends " at line L column C"; the prefix already says where.
    let message = match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    ConfigError::Invalid {
        path: origin.to_string(),
        line,
        column,
        message,
    }
}

/// Replaces `${NAME}` and `${NAME:default}` with environment values.
/// Comment lines are left alone, so commented-out examples may name
/// variables that are not set.
fn interpolate(
    origin: &str,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            out.push_str(&interpolate_line(origin, index + 1, line, lookup)?);
        }
    }
    Ok(out)
}

fn interpolate_line(
    origin: &str,
    line_number: usize,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(ConfigError::UnterminatedReference {
                path: origin.to_string(),
                line: line_number,
            });
        };
        let reference = &after[..end];
        let (name, default) = match reference.split_once(':') {
            Some((name, default)) => (name, Some(default)),
            None => (reference, None),
        };
        match (lookup(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(ConfigError::MissingEnv {
                    path: origin.to_string(),
                    name: name.to_string(),
                })
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml("test.yaml", text, &|name| match name {
            "BUCKET" => Some("team-policies".to_string()),
            _ => None,
        })
    }

    #[test]
    fn empty_file_means_the_disk_default() {
        let config = parse("").unwrap();
        assert_eq!(config.storage.driver, StorageDriver::Disk);
        assert_eq!(
            config.storage.disk.unwrap().directory,
            PathBuf::from("policies")
        );
        assert_eq!(config.engine.default_policy_version, "default");
    }

    #[test]
    fn cerbos_bucket_url_form() {
        let config = parse(
            "storage:\n  driver: blob\n  blob:\n    bucket: \"s3://my-bucket?region=eu-west-1\"\n    prefix: policies/\n    updatePollInterval: 60s\n    requestTimeout: 5s\n",
        )
        .unwrap();
        let blob = config.storage.blob.unwrap();
        let location = blob.location().unwrap();
        assert_eq!(location.bucket, "my-bucket");
        assert_eq!(location.region.as_deref(), Some("eu-west-1"));
        assert_eq!(blob.prefix, "policies/");
        assert_eq!(blob.update_poll_interval, Some(Duration::from_secs(60)));
        assert_eq!(blob.request_timeout, Some(Duration::from_secs(5)));
    }

    #[test]
    fn gocloud_endpoint_without_ssl_is_plain_http() {
        let config = parse(
            "storage:\n  driver: blob\n  blob:\n    bucket: \"s3://b?region=r&endpoint=127.0.0.1:9000&disableSSL=true&s3ForcePathStyle=true\"\n",
        )
        .unwrap();
        let location = config.storage.blob.unwrap().location().unwrap();
        assert_eq!(location.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    }

    #[test]
    fn lambda_guide_form_with_interpolation() {
        let config = parse(
            "storage:\n  driver: blob\n  blob:\n    driver: s3\n    bucket: ${BUCKET}\n    region: ${REGION:us-east-1}\n",
        )
        .unwrap();
        let location = config.storage.blob.unwrap().location().unwrap();
        assert_eq!(location.bucket, "team-policies");
        assert_eq!(location.region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn unset_variable_without_default_is_named() {
        let err = parse("storage:\n  disk:\n    directory: ${POLICY_DIR}\n").unwrap_err();
        assert!(err.to_string().contains("POLICY_DIR"), "{err}");
    }

    #[test]
    fn comments_are_not_interpolated() {
        let config = parse("# bucket: ${NOT_SET}\nengine:\n  defaultPolicyVersion: v1\n").unwrap();
        assert_eq!(config.engine.default_policy_version, "v1");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = parse("engine:\n  defaultPolicyVersion: v1\n  lenient: true\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("lenient"), "{text}");
        assert!(text.starts_with("test.yaml:3:"), "{text}");
    }

    #[test]
    fn server_block_is_accepted_and_its_keys_reported() {
        let config = parse(
            "server:\n  httpListenAddr: \":3592\"\n  cors:\n    allowedOrigins: [\"https://app.example\"]\n",
        )
        .unwrap();
        assert_eq!(config.ignored_server_keys(), vec!["httpListenAddr"]);
        assert_eq!(config.cors().allowed_origins, vec!["https://app.example"]);
    }

    #[test]
    fn blob_driver_needs_a_blob_block() {
        let err = parse("storage:\n  driver: blob\n").unwrap_err();
        assert!(err.to_string().contains("storage.blob"), "{err}");
    }

    #[test]
    fn only_s3_urls_are_supported() {
        let err = parse("storage:\n  driver: blob\n  blob:\n    bucket: gs://x\n").unwrap_err();
        assert!(err.to_string().contains("s3://"), "{err}");
    }

    #[test]
    fn schema_and_engine_settings() {
        let config = parse(
            "schema:\n  enforcement: reject\nengine:\n  lenientScopeSearch: true\n  globals:\n    environment: test\n",
        )
        .unwrap();
        assert_eq!(config.schema.enforcement, SchemaEnforcement::Reject);
        assert!(config.engine.lenient_scope_search);
        assert_eq!(config.engine.globals["environment"], "test");
    }

    #[test]
    fn unterminated_reference_names_the_line() {
        let err = parse("storage:\n  disk:\n    directory: ${OOPS\n").unwrap_err();
        assert!(err.to_string().contains("test.yaml:3"), "{err}");
    }
}
