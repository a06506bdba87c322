//! JSON bodies written straight into the form a gateway response carries
//! them in: the text of a JSON string inside the response envelope.
//!
//! Rendering the Cerbos JSON and then escaping it into the envelope walked
//! every byte twice; a check response's quotes alone are a fifth of its
//! bytes. Here the body is rendered once, already escaped.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

/// A response body, escaped as the content of a JSON string (no quotes
/// around it), ready to be copied into the envelope as is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EscapedBody(String);

impl EscapedBody {
    /// Renders `value` as compact JSON, escaped as it is written, into a
    /// buffer of `capacity` bytes to start with.
    pub fn render<T: Serialize + ?Sized>(
        value: &T,
        capacity: usize,
    ) -> Result<EscapedBody, serde_json::Error> {
        let mut out = Vec::with_capacity(capacity);
        value.serialize(&mut serde_json::Serializer::with_formatter(
            &mut out,
            EmbeddedFormatter,
        ))?;
        Ok(EscapedBody::from_escaped(out))
    }

    /// Escapes JSON text that is already rendered: small bodies such as
    /// errors and health answers.
    pub fn from_json(text: &[u8]) -> EscapedBody {
        let mut out = Vec::with_capacity(text.len() + text.len() / 4);
        // Writing into a Vec cannot fail.
        let _ = write_escaped(&mut out, text);
        EscapedBody::from_escaped(out)
    }

    /// The escaped text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn from_escaped(bytes: Vec<u8>) -> EscapedBody {
        // The input was UTF-8 and escaping adds only ASCII, so the lossy
        // path is never taken.
        EscapedBody(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        )
    }
}

/// serde_json's compact output with every `"` and `\` it writes escaped.
///
/// String fragments are passed on untouched: serde_json hands a formatter
/// only runs that need no escaping, and sends every character that does
/// through `write_char_escape`. Structure (`{`, `:`, digits) needs none.
struct EmbeddedFormatter;

impl Formatter for EmbeddedFormatter {
    fn begin_string<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b"\\\"")
    }

    fn end_string<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b"\\\"")
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        // The longest escape, `\u001f`, is six bytes.
        let mut plain = io::Cursor::new([0u8; 6]);
        CompactFormatter.write_char_escape(&mut plain, char_escape)?;
        let len = usize::try_from(plain.position()).unwrap_or(0);
        write_escaped(writer, plain.get_ref().get(..len).unwrap_or_default())
    }

    fn write_raw_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        write_escaped(writer, fragment.as_bytes())
    }
}

/// Writes `text` with each `"` and `\` escaped. Compact JSON text has no
/// raw control characters, so these are the only bytes that need it.
fn write_escaped<W: ?Sized + Write>(writer: &mut W, text: &[u8]) -> io::Result<()> {
    let mut start = 0;
    for (at, &byte) in text.iter().enumerate() {
        if byte == b'"' || byte == b'\\' {
            writer.write_all(&text[start..at])?;
            writer.write_all(&[b'\\', byte])?;
            start = at + 1;
        }
    }
    writer.write_all(&text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// What the envelope's `body` field holds after a JSON reader unescapes it.
    fn unescaped(body: &EscapedBody) -> String {
        serde_json::from_str(&format!("\"{}\"", body.as_str())).unwrap()
    }

    #[test]
    fn rendering_escaped_equals_escaping_the_rendered_text() {
        let value = json!({
            "plain": "text",
            "quote\"key": "say \"hi\"",
            "back\\slash": "C:\\dir\\",
            "control": "tab\there\nnew\u{1}line\u{7f}",
            "unicode": "héllo ✓ 𝄞",
            "numbers": [1, -2, 3.5, 1e300, 18446744073709551615u64],
            "nested": {"list": [true, false, null, ""], "empty": {}},
        });
        let plain = serde_json::to_vec(&value).unwrap();
        let body = EscapedBody::render(&value, 0).unwrap();
        assert_eq!(body, EscapedBody::from_json(&plain));
        assert_eq!(unescaped(&body).as_bytes(), plain.as_slice());
        let back: Value = serde_json::from_str(&unescaped(&body)).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn escaping_touches_only_quotes_and_backslashes() {
        let body = EscapedBody::from_json(br#"{"a":"\"\\n"}"#);
        assert_eq!(body.as_str(), r#"{\"a\":\"\\\"\\\\n\"}"#);
        assert_eq!(EscapedBody::from_json(b"").as_str(), "");
    }
}
