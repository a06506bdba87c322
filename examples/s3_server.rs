//! A loopback S3-protocol server for benchmarks, so a cold start from "S3"
//! can be measured without an AWS account.
//!
//! ```text
//! cargo run --release --example s3_server -- ROOT [ACCESS_KEY SECRET_KEY]
//! ```
//!
//! Each folder under ROOT is a bucket; files below it are objects. Like
//! moto, it serves from memory: ROOT is read once at start, so the numbers
//! measure the client and the protocol (s3s: HTTP, SigV4 verification, XML)
//! rather than a test server's file system calls. It implements what a
//! policy store reads: `ListObjectsV2` (prefix, max-keys, continuation) and
//! `GetObject`, with S3's errors for a missing bucket or key. It binds a free
//! port on 127.0.0.1, prints `http://127.0.0.1:PORT` on stdout, and stops when
//! its stdin closes, so a parent process cannot leak it.

// The accept loop the integration tests' S3 server uses.
#[path = "../tests/support/s3_server.rs"]
mod s3_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use s3s::auth::SimpleAuth;
use s3s::crypto::{Checksum, Md5};
use s3s::dto::{
    ETag, GetObjectInput, GetObjectOutput, ListObjectsV2Input, ListObjectsV2Output, Object,
    StreamingBlob, Timestamp,
};
use s3s::service::S3ServiceBuilder;
use s3s::{s3_error, Body, S3Request, S3Response, S3Result, S3};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const DEFAULT_ACCESS_KEY: &str = "verdict-bench";
const DEFAULT_SECRET_KEY: &str = "verdict-bench-secret";
const DEFAULT_MAX_KEYS: i32 = 1000;

struct StoredObject {
    bytes: Vec<u8>,
    e_tag: String,
    modified: SystemTime,
}

/// Bucket name → key → object, read from ROOT at start.
#[derive(Default)]
struct MemoryS3 {
    buckets: BTreeMap<String, BTreeMap<String, StoredObject>>,
}

impl MemoryS3 {
    fn load(root: &Path) -> std::io::Result<MemoryS3> {
        let mut store = MemoryS3::default();
        for entry in std::fs::read_dir(root)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                let mut objects = BTreeMap::new();
                read_objects(&entry.path(), "", &mut objects)?;
                store
                    .buckets
                    .insert(entry.file_name().to_string_lossy().into_owned(), objects);
            }
        }
        Ok(store)
    }

    fn bucket(&self, name: &str) -> S3Result<&BTreeMap<String, StoredObject>> {
        self.buckets
            .get(name)
            .ok_or_else(|| s3_error!(NoSuchBucket))
    }
}

fn read_objects(
    folder: &Path,
    key_prefix: &str,
    objects: &mut BTreeMap<String, StoredObject>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let key = format!("{key_prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type()?.is_dir() {
            read_objects(&entry.path(), &format!("{key}/"), objects)?;
        } else {
            let bytes = std::fs::read(entry.path())?;
            let e_tag = Md5::checksum(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let modified = entry.metadata()?.modified()?;
            objects.insert(
                key,
                StoredObject {
                    bytes,
                    e_tag,
                    modified,
                },
            );
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl S3 for MemoryS3 {
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let objects = self.bucket(&input.bucket)?;
        if input.delimiter.is_some() {
            return Err(s3_error!(NotImplemented, "delimiter is not supported"));
        }
        let prefix = input.prefix.clone().unwrap_or_default();
        let max_keys = input.max_keys.unwrap_or(DEFAULT_MAX_KEYS).clamp(0, 1000);
        let resume_after = [
            input.continuation_token.as_deref(),
            input.start_after.as_deref(),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or("");
        let mut matching = objects
            .range::<str, _>((
                std::ops::Bound::Excluded(resume_after),
                std::ops::Bound::Unbounded,
            ))
            .filter(|(key, _)| key.starts_with(&prefix));
        let limit = usize::try_from(max_keys).unwrap_or(0);
        let page: Vec<Object> = matching
            .by_ref()
            .take(limit)
            .map(|(key, object)| Object {
                key: Some(key.clone()),
                e_tag: Some(ETag::Strong(object.e_tag.clone())),
                size: i64::try_from(object.bytes.len()).ok(),
                last_modified: Some(Timestamp::from(object.modified)),
                ..Default::default()
            })
            .collect();
        let is_truncated = matching.next().is_some();
        let next_continuation_token = if is_truncated {
            page.last().and_then(|o| o.key.clone())
        } else {
            None
        };
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: input.prefix,
            key_count: i32::try_from(page.len()).ok(),
            max_keys: Some(max_keys),
            is_truncated: Some(is_truncated),
            contents: (!page.is_empty()).then_some(page),
            continuation_token: input.continuation_token,
            next_continuation_token,
            start_after: input.start_after,
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        if input.range.is_some() {
            return Err(s3_error!(NotImplemented, "ranges are not supported"));
        }
        let object = self
            .bucket(&input.bucket)?
            .get(&input.key)
            .ok_or_else(|| s3_error!(NoSuchKey))?;
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::from(Body::from(object.bytes.clone()))),
            content_length: i64::try_from(object.bytes.len()).ok(),
            e_tag: Some(ETag::Strong(object.e_tag.clone())),
            last_modified: Some(Timestamp::from(object.modified)),
            ..Default::default()
        }))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(root) = args.first() else {
        eprintln!("usage: s3_server ROOT [ACCESS_KEY SECRET_KEY]");
        return ExitCode::from(2);
    };
    let access_key = args.get(1).map_or(DEFAULT_ACCESS_KEY, String::as_str);
    let secret_key = args.get(2).map_or(DEFAULT_SECRET_KEY, String::as_str);

    let store = match MemoryS3::load(Path::new(root)) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("s3_server: cannot read {root}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut builder = S3ServiceBuilder::new(store);
    builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
    let service = builder.build();

    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("s3_server: cannot bind 127.0.0.1: {err}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("http://{addr}"),
        Err(err) => {
            eprintln!("s3_server: no local address: {err}");
            return ExitCode::FAILURE;
        }
    }

    let accept_loop = s3_support::serve(listener, service);
    let parent_gone = async {
        let mut sink = [0u8; 64];
        let mut stdin = tokio::io::stdin();
        while matches!(stdin.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        () = accept_loop => {}
        () = parent_gone => {}
    }
    ExitCode::SUCCESS
}
