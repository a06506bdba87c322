//! JSON-lines logs on stdout, which Lambda ships to CloudWatch.
//!
//! `tracing-subscriber`'s own JSON format nests span fields under `span` and
//! `spans`; CloudWatch Logs Insights queries want the Lambda request id at
//! the top level of every line, so this formatter flattens the fields of
//! every enclosing span (the runtime opens one per invocation carrying
//! `requestId`) into the line itself. A field named `json_<name>` whose
//! value is JSON text is embedded as JSON under `<name>`, which is how the
//! decision log keeps its structure.
//!
//! Verdict's own Runtime API loop does not open a span per invocation: it
//! marks the invocation with [`invocation_scope`] instead, whose fields the
//! formatter puts on every line the same way. A span costs a few
//! microseconds to open and close (its fields are formatted as JSON and kept
//! in the registry) on every invocation, whether or not anything is logged.

use std::cell::RefCell;
use std::fmt;

use chrono::SecondsFormat;
use serde::{Serialize, Serializer};
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Field-name prefix asking for the value to be embedded as JSON.
const JSON_PREFIX: &str = "json_";

/// Installs the subscriber: level from `RUST_LOG` (else Lambda's
/// `AWS_LAMBDA_LOG_LEVEL`, else `info`), one JSON object per line on stdout.
/// Does nothing when a subscriber is already installed.
pub fn init() {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .map(|level| level.to_ascii_lowercase())
        })
        .unwrap_or_default();
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse_lossy(spec);
    // Err only means a subscriber exists already (e.g. in tests): keep it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines)
        .with_writer(std::io::stdout)
        .try_init();
}

/// The invocation a thread is answering. Its strings are kept between
/// invocations and overwritten, so marking one does not allocate.
#[derive(Default)]
struct Invocation {
    active: bool,
    request_id: String,
    trace_id: Option<String>,
}

thread_local! {
    static INVOCATION: RefCell<Invocation> = RefCell::new(Invocation::default());
}

/// While the returned guard lives, every line this thread logs carries
/// `requestId` and, when there is one, `xrayTraceId`: the fields
/// `lambda_runtime` puts on its per-invocation span.
pub fn invocation_scope(request_id: &str, trace_id: Option<&str>) -> InvocationScope {
    with_invocation(|current| {
        current.active = true;
        current.request_id.clear();
        current.request_id.push_str(request_id);
        match (trace_id, &mut current.trace_id) {
            (Some(new), Some(kept)) => {
                kept.clear();
                kept.push_str(new);
            }
            (new, kept) => *kept = new.map(str::to_string),
        }
    });
    InvocationScope {
        _not_send: std::marker::PhantomData,
    }
}

/// Ends the invocation's fields when dropped, on the thread that set them.
pub struct InvocationScope {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for InvocationScope {
    fn drop(&mut self) {
        with_invocation(|current| current.active = false);
    }
}

/// Only fails while the thread is exiting, when there is nothing to mark.
fn with_invocation(f: impl FnOnce(&mut Invocation)) {
    let _ = INVOCATION.try_with(|cell| {
        if let Ok(mut current) = cell.try_borrow_mut() {
            f(&mut current);
        }
    });
}

/// The event formatter: one flat JSON object per event.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Line::default();
        line.put(
            "timestamp",
            Value::String(chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)),
        );
        line.put("level", Value::String(meta.level().as_str().to_string()));
        line.put("target", Value::String(meta.target().to_string()));
        // A line logged while the thread exits has no invocation to name.
        let _ = INVOCATION.try_with(|cell| {
            if let Some(invocation) = cell.try_borrow().ok().filter(|i| i.active) {
                line.put("requestId", Value::String(invocation.request_id.clone()));
                if let Some(trace_id) = &invocation.trace_id {
                    line.put("xrayTraceId", Value::String(trace_id.clone()));
                }
            }
        });
        if let Some(scope) = ctx.event_scope() {
            // Innermost first, and the first value of a name wins.
            for span in scope {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(fields) {
                    for (name, value) in map {
                        line.put(&name, value);
                    }
                }
            }
        }
        event.record(&mut Visitor(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writer.write_str(&text)?;
        writer.write_char('\n')
    }
}

/// The fields of one line, in insertion order, without repeated names.
#[derive(Default)]
struct Line(Vec<(String, Value)>);

impl Line {
    fn put(&mut self, name: &str, value: Value) {
        if !self.0.iter().any(|(n, _)| n == name) {
            self.0.push((name.to_string(), value));
        }
    }
}

impl Serialize for Line {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

struct Visitor<'a>(&'a mut Line);

impl Visitor<'_> {
    fn text(&mut self, field: &Field, text: String) {
        match field.name().strip_prefix(JSON_PREFIX) {
            Some(name) => {
                let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                self.0.put(name, value);
            }
            None => self.0.put(field.name(), Value::String(text)),
        }
    }
}

impl Visit for Visitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.put(field.name(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.put(field.name(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.put(field.name(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.put(field.name(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_string());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, format!("{value:?}"));
    }
}
