//! Gateway events in, gateway responses out.
//!
//! One struct reads the fields that API Gateway REST (payload 1.0), HTTP API
//! and Function URLs (payload 2.0) and ALB target groups put in their events;
//! the origin is told apart by `requestContext`. This is done here rather than
//! through `lambda_http`'s `http::Request` conversion because that conversion
//! panics on input a client controls (a body that is not valid base64, a
//! `Host` header that does not form a URL), and with `panic = "abort"` one
//! such request would kill the execution environment. Here every malformed
//! input becomes an error response.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use base64::Engine;
use serde::de::{DeserializeSeed, Error as DeError, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::embed::EscapedBody;
use crate::api::{from_json_bytes, ApiError};

/// Cerbos's limit on a request body, after base64 decoding.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// An HTTP request as a gateway delivers it to a Lambda function.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpEvent {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    http_method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    raw_path: Option<String>,
    #[serde(default)]
    headers: Option<HeaderList>,
    #[serde(default)]
    multi_value_headers: Option<HeaderList>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: Option<bool>,
    #[serde(default)]
    request_context: Option<RequestContext>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext {
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    http: Option<HttpContext>,
    #[serde(default)]
    elb: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
struct HttpContext {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

/// Which gateway sent the event; it decides the response's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// API Gateway REST API, or an HTTP API with payload format 1.0.
    RestV1,
    /// API Gateway HTTP API (payload format 2.0) or a Lambda Function URL.
    HttpV2,
    /// An Application Load Balancer target group.
    Alb {
        /// Whether the target group has multi-value headers turned on.
        multi_value: bool,
    },
}

impl HttpEvent {
    /// Parses an event document.
    ///
    /// The body of a JSON request arrives as a JSON string with every quote
    /// escaped. serde_json stops at each escape; simd-json finds quotes and
    /// escapes a block of bytes at a time: a 1×3 check's event took 15k
    /// instructions to read instead of 27k (BENCHMARKS.md). simd-json
    /// unescapes in place, so it reads a copy. A document it refuses is read
    /// again by serde_json, whose error is the one reported.
    pub fn from_json(event: &[u8]) -> Result<HttpEvent, serde_json::Error> {
        let kept = (event.len() <= REUSED_BUFFER_BYTES)
            .then(|| SIMD_JSON.with(|cell| cell.try_borrow_mut().map(|mut s| s.parse(event))))
            .and_then(Result::ok);
        let parsed = kept.unwrap_or_else(|| SimdJson::new(event.len()).parse(event));
        match parsed {
            Some(parsed) => Ok(parsed),
            None => from_json_bytes(event),
        }
    }

    /// Which gateway sent the event, or `None` when it is not an HTTP event.
    pub fn origin(&self) -> Option<Origin> {
        let context = self.request_context.as_ref();
        if context.is_some_and(|c| c.elb.is_some()) {
            return Some(Origin::Alb {
                multi_value: self.multi_value_headers.is_some(),
            });
        }
        if context.is_some_and(|c| c.http.is_some()) || self.version.as_deref() == Some("2.0") {
            return Some(Origin::HttpV2);
        }
        self.http_method.as_ref().map(|_| Origin::RestV1)
    }

    /// The HTTP method, as sent (gateways send it upper-case).
    pub fn method(&self) -> &str {
        let v2 = self
            .request_context
            .as_ref()
            .and_then(|c| c.http.as_ref())
            .and_then(|h| h.method.as_deref());
        // HTTP API and Function URL events carry the method in the request
        // context; some tools (cargo-lambda) also put a stale `httpMethod`
        // on them, so the context wins.
        v2.or(self.http_method.as_deref()).unwrap_or("")
    }

    /// The request path as the gateway sent it.
    pub fn path(&self) -> &str {
        let v2 = self
            .request_context
            .as_ref()
            .and_then(|c| c.http.as_ref())
            .and_then(|h| h.path.as_deref());
        self.raw_path
            .as_deref()
            .or(self.path.as_deref())
            .or(v2)
            .unwrap_or("/")
    }

    /// The path without its leading API Gateway stage segment, when it has
    /// one: REST APIs may include it (`/prod/api/check`) and HTTP APIs do
    /// for named stages. The caller tries the path as sent first, so a stage
    /// named like a route segment (`api`) cannot hide a route.
    pub fn path_without_stage(&self) -> Option<&str> {
        let stage = self
            .request_context
            .as_ref()
            .and_then(|c| c.stage.as_deref())
            .filter(|s| !s.is_empty() && *s != "$default")?;
        match self.path().strip_prefix('/')?.strip_prefix(stage)? {
            "" => Some("/"),
            rest if rest.starts_with('/') => Some(rest),
            _ => None,
        }
    }

    /// The first value of a header; names are compared case-insensitively
    /// because REST APIs keep the client's spelling. REST API events carry
    /// both maps, and the multi-value one is complete, so it is read first.
    pub fn header(&self, name: &str) -> Option<&str> {
        [&self.multi_value_headers, &self.headers]
            .into_iter()
            .flatten()
            .find_map(|list| list.get(name))
    }

    /// Every header with all its values, names lower-cased and sorted.
    pub fn header_values(&self) -> Vec<(String, Vec<String>)> {
        let mut all: Vec<(String, Vec<String>)> = Vec::new();
        for (index, list) in [&self.multi_value_headers, &self.headers]
            .into_iter()
            .enumerate()
        {
            let Some(list) = list else { continue };
            let seen = all.len();
            for (name, value) in list.iter() {
                let name = name.to_ascii_lowercase();
                // A name already taken from the multi-value map is complete.
                if index > 0 && all[..seen].iter().any(|(n, _)| *n == name) {
                    continue;
                }
                match all.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, values)) => values.push(value.to_string()),
                    None => all.push((name, vec![value.to_string()])),
                }
            }
        }
        all.sort();
        all
    }

    /// The body bytes, base64-decoded when the gateway encoded them, and
    /// refused when larger than [`MAX_BODY_BYTES`].
    pub fn body(&self) -> Result<Cow<'_, [u8]>, ApiError> {
        let Some(body) = self.body.as_deref() else {
            return Ok(Cow::Borrowed(&[]));
        };
        if !self.is_base64_encoded.unwrap_or(false) {
            check_size(body.len())?;
            return Ok(Cow::Borrowed(body.as_bytes()));
        }
        // Refuse before decoding so an oversized body is never allocated.
        let encoded = body.trim_end_matches('=').len();
        check_size(encoded / 4 * 3 + (encoded % 4).saturating_sub(1))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| ApiError::invalid(format!("request body is not valid base64: {e}")))?;
        check_size(decoded.len())?;
        Ok(Cow::Owned(decoded))
    }
}

/// Events up to this size are parsed in buffers kept for the next one
/// (which grow to fit it); a larger event gets its own, so that it does not
/// stay resident.
const REUSED_BUFFER_BYTES: usize = 64 * 1024;

thread_local! {
    /// Allocating and growing simd-json's buffers afresh for each event cost
    /// about 2k instructions of a 1×3 invocation.
    static SIMD_JSON: RefCell<SimdJson> = RefCell::new(SimdJson::new(8 * 1024));
}

/// simd-json's working buffers and the copy of the event it unescapes in.
struct SimdJson {
    buffers: simd_json::Buffers,
    copy: Vec<u8>,
}

impl SimdJson {
    fn new(capacity: usize) -> SimdJson {
        SimdJson {
            buffers: simd_json::Buffers::new(capacity),
            copy: Vec::with_capacity(capacity),
        }
    }

    fn parse(&mut self, event: &[u8]) -> Option<HttpEvent> {
        self.copy.clear();
        self.copy.extend_from_slice(event);
        simd_json::serde::from_slice_with_buffers(&mut self.copy, &mut self.buffers).ok()
    }
}

/// The headers of an event, all names and values in one buffer.
///
/// Gateways send a map of strings (or of string lists, or nulls); parsing it
/// into a `HashMap` costs two allocations per header, which was a third of
/// the handler's time for REST API events. Here a whole map costs two.
#[derive(Debug, Default)]
pub struct HeaderList {
    text: String,
    /// Byte offsets into `text`: name start, name end, value start, value end.
    entries: Vec<[u32; 4]>,
}

impl HeaderList {
    /// The first value of `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every (name, value) pair, in the event's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let at = |start: u32, end: u32| self.text.get(start as usize..end as usize).unwrap_or("");
        self.entries
            .iter()
            .map(move |&[ns, ne, vs, ve]| (at(ns, ne), at(vs, ve)))
    }

    fn offset(&self) -> Result<u32, &'static str> {
        u32::try_from(self.text.len()).map_err(|_| "headers larger than 4 GiB")
    }
}

impl<'de> Deserialize<'de> for HeaderList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<HeaderList, D::Error> {
        deserializer.deserialize_map(HeaderListVisitor)
    }
}

struct HeaderListVisitor;

impl<'de> Visitor<'de> for HeaderListVisitor {
    type Value = HeaderList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of header names to values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderList, A::Error> {
        let mut list = HeaderList::default();
        loop {
            let name_start = list.offset().map_err(A::Error::custom)?;
            if map.next_key_seed(Append(&mut list.text))?.is_none() {
                return Ok(list);
            }
            let name_end = list.offset().map_err(A::Error::custom)?;
            map.next_value_seed(Values {
                list: &mut list,
                name: [name_start, name_end],
            })?;
        }
    }
}

/// Appends a string to the buffer.
struct Append<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for Append<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Append<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: DeError>(self, value: &str) -> Result<(), E> {
        self.0.push_str(value);
        Ok(())
    }
}

/// Adds the value(s) of one header: a string, a list of strings, or null.
struct Values<'a> {
    list: &'a mut HeaderList,
    name: [u32; 2],
}

impl Values<'_> {
    fn push<E: DeError>(&mut self, value: &str) -> Result<(), E> {
        let start = self.list.offset().map_err(E::custom)?;
        self.list.text.push_str(value);
        let end = self.list.offset().map_err(E::custom)?;
        self.list
            .entries
            .push([self.name[0], self.name[1], start, end]);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Values<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Values<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a header value, a list of them, or null")
    }

    fn visit_str<E: DeError>(mut self, value: &str) -> Result<(), E> {
        self.push(value)
    }

    fn visit_unit<E: DeError>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: DeError>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Element(&mut self))?.is_some() {}
        Ok(())
    }
}

/// One value of a multi-value header: a string or null.
struct Element<'a, 'b>(&'a mut Values<'b>);

impl<'de> DeserializeSeed<'de> for Element<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a header value or null")
    }

    fn visit_str<E: DeError>(self, value: &str) -> Result<(), E> {
        self.0.push(value)
    }

    fn visit_unit<E: DeError>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: DeError>(self) -> Result<(), E> {
        Ok(())
    }
}

fn check_size(len: usize) -> Result<(), ApiError> {
    if len > MAX_BODY_BYTES {
        return Err(ApiError::too_large(format!(
            "request body is {len} bytes, more than the limit of {MAX_BODY_BYTES} bytes (4 MiB)"
        )));
    }
    Ok(())
}

/// Response headers: few, so a vector beats a map.
pub type Headers = Vec<(&'static str, Cow<'static, str>)>;

/// What the function returns to the gateway, shaped for its origin.
#[derive(Debug)]
pub struct LambdaResponse {
    origin: Origin,
    status: u16,
    headers: Headers,
    body: EscapedBody,
}

impl LambdaResponse {
    /// A response with a JSON body (or an empty one), already escaped.
    pub fn new(origin: Origin, status: u16, headers: Headers, body: EscapedBody) -> LambdaResponse {
        LambdaResponse {
            origin,
            status,
            headers,
            body,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response as the JSON Lambda takes. The body is already escaped,
    /// so it is copied in; only the few headers go through serde_json.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::with_capacity(self.body.as_str().len() + 256);
        out.extend_from_slice(b"{\"statusCode\":");
        serde_json::to_writer(&mut out, &self.status)?;
        let single = |out: &mut Vec<u8>| {
            out.extend_from_slice(b",\"headers\":");
            serde_json::to_writer(&mut *out, &SingleHeaders(&self.headers))
        };
        match self.origin {
            Origin::RestV1 | Origin::HttpV2 => single(&mut out)?,
            Origin::Alb { multi_value } => {
                out.extend_from_slice(b",\"statusDescription\":");
                serde_json::to_writer(
                    &mut out,
                    &format!("{} {}", self.status, reason(self.status)),
                )?;
                // ALB reads only the field matching the target group's mode.
                if multi_value {
                    out.extend_from_slice(b",\"multiValueHeaders\":");
                    serde_json::to_writer(&mut out, &MultiHeaders(&self.headers))?;
                } else {
                    single(&mut out)?;
                }
            }
        }
        out.extend_from_slice(b",\"body\":\"");
        out.extend_from_slice(self.body.as_str().as_bytes());
        out.extend_from_slice(b"\",\"isBase64Encoded\":false}");
        Ok(out)
    }
}

struct SingleHeaders<'a>(&'a Headers);

impl Serialize for SingleHeaders<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (*k, v.as_ref())))
    }
}

struct MultiHeaders<'a>(&'a Headers);

impl Serialize for MultiHeaders<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (*k, [v.as_ref()])))
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> HttpEvent {
        HttpEvent::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn simd_json_reads_events_as_serde_json_does() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/events");
        let mut documents: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
            .collect();
        assert!(documents.len() >= 8);
        documents.push(
            br#"{"version":"2.0","body":"{\"a\":\"\u00e9\ud834\udd1e\\\\ \/\t\"}","isBase64Encoded":null,"headers":null}"#
                .to_vec(),
        );
        for document in documents {
            let mut scratch = document.clone();
            let simd: HttpEvent = simd_json::serde::from_slice(&mut scratch).unwrap();
            let serde: HttpEvent = serde_json::from_slice(&document).unwrap();
            assert_eq!(format!("{simd:?}"), format!("{serde:?}"));
        }
    }

    #[test]
    fn what_simd_json_refuses_gets_serde_json_errors() {
        for bad in [
            &b"not json"[..],
            br#"{"httpMethod": 5}"#,
            b"{\"body\":\"\xff\"}",
        ] {
            let ours = HttpEvent::from_json(bad).unwrap_err().to_string();
            let theirs = serde_json::from_slice::<HttpEvent>(bad)
                .unwrap_err()
                .to_string();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn stage_is_stripped_only_as_a_whole_segment() {
        let e = event(
            r#"{"httpMethod":"POST","path":"/prod/api/check","requestContext":{"stage":"prod"}}"#,
        );
        assert_eq!(e.path_without_stage(), Some("/api/check"));
        let e = event(
            r#"{"httpMethod":"POST","path":"/production/api/check","requestContext":{"stage":"prod"}}"#,
        );
        assert_eq!(e.path_without_stage(), None);
        let e = event(
            r#"{"version":"2.0","rawPath":"/api/check","requestContext":{"stage":"$default","http":{"method":"POST"}}}"#,
        );
        assert_eq!(e.path(), "/api/check");
        assert_eq!(e.path_without_stage(), None);
        assert_eq!(e.method(), "POST");
        // cargo-lambda puts a stale httpMethod on payload 2.0 events.
        let e = event(
            r#"{"version":"2.0","httpMethod":"GET","rawPath":"/api/check","requestContext":{"http":{"method":"POST"}}}"#,
        );
        assert_eq!(e.origin(), Some(Origin::HttpV2));
        assert_eq!(e.method(), "POST");
    }

    #[test]
    fn headers_of_every_shape() {
        let e = event(
            r#"{"httpMethod":"GET","headers":{"Origin":"https://a","X-Null":null,"Dup":"single"},"multiValueHeaders":{"origin":["https://a"],"dup":["one","two"],"empty":[],"nul":null}}"#,
        );
        assert_eq!(e.header("ORIGIN"), Some("https://a"));
        assert_eq!(e.header("dup"), Some("one"));
        assert_eq!(e.header("x-null"), None);
        assert_eq!(
            e.header_values(),
            vec![
                (
                    "dup".to_string(),
                    vec!["one".to_string(), "two".to_string()]
                ),
                ("origin".to_string(), vec!["https://a".to_string()]),
            ]
        );
        let e = event(r#"{"version":"2.0","headers":{"a\"b":"c\u00e9"}}"#);
        assert_eq!(e.header("a\"b"), Some("cé"));
        assert!(HttpEvent::from_json(br#"{"headers":{"a":1}}"#).is_err());
        assert!(HttpEvent::from_json(br#"{"headers":["a"]}"#).is_err());
        let nested = br#"{"multiValueHeaders":{"a":[["b"]]}}"#;
        assert!(HttpEvent::from_json(nested).is_err());
    }

    #[test]
    fn base64_size_is_checked_before_decoding() {
        let big = "A".repeat((MAX_BODY_BYTES / 3 + 1) * 4);
        let e = HttpEvent {
            http_method: Some("POST".into()),
            body: Some(big),
            is_base64_encoded: Some(true),
            ..HttpEvent::default()
        };
        assert_eq!(e.body().unwrap_err().http_status(), 413);
        let e = HttpEvent {
            body: Some("not base64!".into()),
            is_base64_encoded: Some(true),
            ..HttpEvent::default()
        };
        assert_eq!(e.body().unwrap_err().http_status(), 400);
    }

    #[test]
    fn exact_limit_is_accepted() {
        let text = "x".repeat(MAX_BODY_BYTES);
        let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        let e = HttpEvent {
            body: Some(encoded),
            is_base64_encoded: Some(true),
            ..HttpEvent::default()
        };
        assert_eq!(e.body().unwrap().len(), MAX_BODY_BYTES);
    }
}
