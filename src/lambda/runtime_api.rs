//! A blocking client for the Lambda Runtime API: the loop `bootstrap` runs
//! between invocations.
//!
//! A Lambda function handles one event at a time, so its conversation with
//! the Runtime API is strictly sequential: `GET …/invocation/next`, then one
//! `POST …/{id}/response` or `…/{id}/error`. This client holds one
//! keep-alive connection and does each exchange with one write and plain
//! blocking reads, parsing heads and chunk sizes with `httparse`; an answer
//! and the `GET …/next` after it share one write. Under the
//! emulator, a function that does no work was held 93 µs per event by
//! `lambda_runtime`'s pooled async client and 24 µs by this one, with both
//! vCPUs free (BENCHMARKS.md): the difference is more than a policy
//! decision costs. `lambda_runtime` stays available behind
//! `VERDICT_RUNTIME_LOOP=lambda_runtime` (see [`super::run`]).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::Serialize;

use super::err::RuntimeApiError;

/// Path of the long-poll for the next event.
pub const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";

/// Path of the init error endpoint.
pub const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";

/// Header naming the invocation an event belongs to.
const REQUEST_ID_HEADER: &str = "lambda-runtime-aws-request-id";

/// Header carrying the X-Ray trace of the invocation.
const TRACE_ID_HEADER: &str = "lambda-runtime-trace-id";

/// Lambda's synchronous payload limit is 6 MB; a body many times larger
/// means a broken peer, not an event, and is refused before allocation.
const MAX_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;

/// Bound on a response head (status line and headers).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Bound on the number of headers in a response head.
const MAX_HEADERS: usize = 64;

/// One event handed to the function.
#[derive(Debug)]
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`: where the answer goes.
    pub request_id: String,
    /// `Lambda-Runtime-Trace-Id`, when X-Ray tracing is on.
    pub trace_id: Option<String>,
    /// The event document.
    pub event: Vec<u8>,
}

/// Lambda's error document, as `/error` and `/init/error` take it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDocument<'a> {
    error_message: &'a str,
    error_type: &'a str,
}

/// A response from the Runtime API.
#[derive(Debug)]
struct Reply {
    status: u16,
    request_id: Option<String>,
    trace_id: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    /// Whether the Runtime API took the request to `path` (any 2xx).
    fn accepted(&self, path: &str) -> Result<(), RuntimeApiError> {
        if (200..300).contains(&self.status) {
            Ok(())
        } else {
            Err(RuntimeApiError::Status {
                path: path.to_string(),
                status: self.status,
            })
        }
    }
}

/// A connection to the Runtime API at `AWS_LAMBDA_RUNTIME_API`, opened on
/// first use and opened again when the peer has closed it.
pub struct RuntimeApi {
    address: String,
    timeout: Option<Duration>,
    connection: Option<BufReader<TcpStream>>,
    /// A `GET /next` went out on `connection` right behind the last answer,
    /// and its reply has not been read yet.
    next_sent: bool,
}

impl RuntimeApi {
    /// A client for `address` (`host:port`). Nothing is connected yet.
    pub fn new(address: &str) -> RuntimeApi {
        RuntimeApi {
            address: address.to_string(),
            timeout: None,
            connection: None,
            next_sent: false,
        }
    }

    /// Bounds connecting, each write and each read. Without it the client
    /// waits as long as the Runtime API does: `/next` is a long-poll that
    /// only answers when an event arrives.
    pub fn with_timeout(mut self, timeout: Duration) -> RuntimeApi {
        self.timeout = Some(timeout);
        self
    }

    /// Waits for the next event.
    pub fn next_invocation(&mut self) -> Result<Invocation, RuntimeApiError> {
        let reply = match self.sent_next_reply() {
            Some(Ok(reply)) => reply,
            // The peer closed the connection after taking the answer (say,
            // `connection: close`), so the request sent behind it was lost.
            None | Some(Err(RuntimeApiError::Io(_))) => {
                let request = self.request("GET", NEXT_PATH, None, &[]);
                self.exchange(&request)?
            }
            Some(Err(err)) => return Err(err),
        };
        reply.accepted(NEXT_PATH)?;
        let request_id = reply
            .request_id
            .filter(|id| !id.is_empty())
            .ok_or(RuntimeApiError::MissingRequestId)?;
        Ok(Invocation {
            request_id,
            trace_id: reply.trace_id,
            event: reply.body,
        })
    }

    /// Answers the invocation `request_id` with `body`.
    pub fn respond(&mut self, request_id: &str, body: &[u8]) -> Result<(), RuntimeApiError> {
        let path = ["/2018-06-01/runtime/invocation/", request_id, "/response"].concat();
        self.answer(&path, None, body)
    }

    /// Fails the invocation `request_id`: Lambda returns the error to the
    /// caller instead of a response.
    pub fn fail(
        &mut self,
        request_id: &str,
        error_type: &str,
        message: &str,
    ) -> Result<(), RuntimeApiError> {
        let path = format!("/2018-06-01/runtime/invocation/{request_id}/error");
        let body = error_document(error_type, message)?;
        self.answer(&path, Some(error_type), &body)
    }

    /// Reports a cold start that failed; Lambda then ends the environment.
    pub fn fail_init(&mut self, error_type: &str, message: &str) -> Result<(), RuntimeApiError> {
        let body = error_document(error_type, message)?;
        let request = self.request("POST", INIT_ERROR_PATH, Some(error_type), &body);
        self.exchange(&request)?.accepted(INIT_ERROR_PATH)
    }

    /// Posts an invocation's answer with `GET /next` right behind it, in one
    /// write: the function has nothing left to do, and the Runtime API
    /// (HTTP/1.1, one request at a time per connection) takes the second
    /// request as soon as it has answered the first. This saves the round
    /// trip of waiting for the `202` before asking for the next event.
    fn answer(
        &mut self,
        path: &str,
        error_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), RuntimeApiError> {
        let mut request = self.request("POST", path, error_type, body);
        self.append_request(&mut request, "GET", NEXT_PATH, None, &[]);
        let reply = self.exchange(&request)?;
        self.next_sent = self.connection.is_some();
        reply.accepted(path)
    }

    /// The reply to the `GET /next` sent behind the last answer, if one was
    /// sent on a connection still open.
    fn sent_next_reply(&mut self) -> Option<Result<Reply, RuntimeApiError>> {
        if !std::mem::take(&mut self.next_sent) {
            return None;
        }
        let mut connection = self.connection.take()?;
        Some(read_reply(&mut connection).map(|(reply, keep_alive)| {
            if keep_alive {
                self.connection = Some(connection);
            }
            reply
        }))
    }

    /// Writes `request` and reads the reply to its first request. A
    /// kept-alive connection the peer has closed meanwhile fails on first
    /// use, so that failure earns exactly one retry on a new connection.
    fn exchange(&mut self, request: &[u8]) -> Result<Reply, RuntimeApiError> {
        let reused = self.connection.is_some();
        match self.exchange_once(request) {
            Err(RuntimeApiError::Io(_)) if reused => self.exchange_once(request),
            result => result,
        }
    }

    fn request(&self, method: &str, path: &str, error_type: Option<&str>, body: &[u8]) -> Vec<u8> {
        // Room for the head, and for a `GET /next` appended behind it.
        let mut request = Vec::with_capacity(512 + body.len());
        self.append_request(&mut request, method, path, error_type, body);
        request
    }

    /// Appends one request to `request`, so that two can share a write.
    fn append_request(
        &self,
        request: &mut Vec<u8>,
        method: &str,
        path: &str,
        error_type: Option<&str>,
        body: &[u8],
    ) {
        // Copied in pieces: `write!` spent more instructions on formatting
        // these few fields than the rest of the exchange.
        let mut put = |parts: &[&str]| {
            for part in parts {
                request.extend_from_slice(part.as_bytes());
            }
        };
        put(&[method, " ", path, " HTTP/1.1\r\nhost: ", &self.address]);
        put(&[
            "\r\nuser-agent: verdict/",
            env!("CARGO_PKG_VERSION"),
            "\r\n",
        ]);
        if let Some(error_type) = error_type {
            put(&["lambda-runtime-function-error-type: ", error_type, "\r\n"]);
        }
        if method == "POST" {
            let mut length = itoa::Buffer::new();
            put(&[
                "content-type: application/json\r\ncontent-length: ",
                length.format(body.len()),
                "\r\n",
            ]);
        }
        put(&["\r\n"]);
        request.extend_from_slice(body);
    }

    fn exchange_once(&mut self, request: &[u8]) -> Result<Reply, RuntimeApiError> {
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => self.connect()?,
        };
        connection.get_mut().write_all(request)?;
        let (reply, keep_alive) = read_reply(&mut connection)?;
        if keep_alive {
            self.connection = Some(connection);
        }
        Ok(reply)
    }

    fn connect(&self) -> Result<BufReader<TcpStream>, RuntimeApiError> {
        let connect_error = |source: io::Error| RuntimeApiError::Connect {
            address: self.address.clone(),
            source,
        };
        let mut last_error = io::Error::new(io::ErrorKind::InvalidInput, "no address");
        for address in self.address.to_socket_addrs().map_err(connect_error)? {
            let attempt = match self.timeout {
                Some(timeout) => TcpStream::connect_timeout(&address, timeout),
                None => TcpStream::connect(address),
            };
            match attempt {
                Ok(stream) => {
                    // Each request is one write; waiting to coalesce it with
                    // a later one would only add latency.
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(self.timeout)?;
                    stream.set_write_timeout(self.timeout)?;
                    return Ok(BufReader::new(stream));
                }
                Err(err) => last_error = err,
            }
        }
        Err(connect_error(last_error))
    }
}

/// Lambda's error document for `error_type` and `message`.
fn error_document(error_type: &str, message: &str) -> Result<Vec<u8>, RuntimeApiError> {
    serde_json::to_vec(&ErrorDocument {
        error_message: message,
        error_type,
    })
    .map_err(|err| RuntimeApiError::Encode(err.to_string()))
}

/// Reads one response. The flag says whether the connection can carry the
/// next request.
fn read_reply(reader: &mut impl BufRead) -> Result<(Reply, bool), RuntimeApiError> {
    let Head {
        mut reply,
        length,
        chunked,
        mut keep_alive,
    } = read_head(reader)?;
    let status = reply.status;
    reply.body = if chunked {
        read_chunked(reader)?
    } else if let Some(length) = length {
        read_exact_body(reader, length)?
    } else if status == 204 || status == 304 || status < 200 {
        Vec::new()
    } else {
        // No framing: the body runs to the end of the connection.
        keep_alive = false;
        let mut body = Vec::new();
        reader
            .take(MAX_PAYLOAD_BYTES as u64 + 1)
            .read_to_end(&mut body)?;
        check_size(body.len())?;
        body
    };
    Ok((reply, keep_alive))
}

/// What a response's status line and headers say.
struct Head {
    /// The reply so far, without its body.
    reply: Reply,
    length: Option<usize>,
    chunked: bool,
    keep_alive: bool,
}

/// Reads the status line and headers, through the blank line that ends them.
///
/// The buffered bytes go to httparse, which also skips blank lines left
/// between responses. A head that came in one read, as a local Runtime
/// API's does, is parsed where it lies; only a head split over reads is
/// gathered into a buffer first.
fn read_head(reader: &mut impl BufRead) -> Result<Head, RuntimeApiError> {
    let mut gathered = Vec::new();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Err(RuntimeApiError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the Runtime API closed the connection",
            )));
        }
        let before = gathered.len();
        let take = available.len().min(MAX_HEAD_BYTES + 1 - before);
        let parsed = if before == 0 {
            parse_head(&available[..take])?
        } else {
            gathered.extend_from_slice(&available[..take]);
            parse_head(&gathered)?
        };
        if let Some((head, len)) = parsed {
            reader.consume(len.saturating_sub(before));
            return Ok(head);
        }
        if before == 0 {
            gathered.extend_from_slice(&available[..take]);
        }
        reader.consume(take);
        if gathered.len() > MAX_HEAD_BYTES {
            return Err(malformed("response head too large"));
        }
    }
}

/// The head at the start of `bytes` and its length, or `None` when it is
/// not all there yet.
fn parse_head(bytes: &[u8]) -> Result<Option<(Head, usize)>, RuntimeApiError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => Ok(Some((Head::of(&response)?, len))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(err) => Err(malformed(&format!("bad response head: {err}"))),
    }
}

impl Head {
    fn of(response: &httparse::Response<'_, '_>) -> Result<Head, RuntimeApiError> {
        let mut head = Head {
            reply: Reply {
                status: response.code.unwrap_or_default(),
                request_id: None,
                trace_id: None,
                body: Vec::new(),
            },
            length: None,
            chunked: false,
            keep_alive: response.version == Some(1),
        };
        for header in response.headers.iter() {
            let name = header.name;
            // Only the values read below need to be text.
            let value = || {
                std::str::from_utf8(header.value)
                    .map(str::trim)
                    .map_err(|_| malformed(&format!("header {name} is not UTF-8")))
            };
            if name.eq_ignore_ascii_case("content-length") {
                let value = value()?;
                let parsed = value
                    .parse::<usize>()
                    .map_err(|_| malformed(&format!("content-length {value:?}")))?;
                head.length = Some(parsed);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                head.chunked = value()?
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            } else if name.eq_ignore_ascii_case("connection") {
                let value = value()?;
                if value.eq_ignore_ascii_case("close") {
                    head.keep_alive = false;
                } else if value.eq_ignore_ascii_case("keep-alive") {
                    head.keep_alive = true;
                }
            } else if name.eq_ignore_ascii_case(REQUEST_ID_HEADER) {
                head.reply.request_id = Some(value()?.to_string());
            } else if name.eq_ignore_ascii_case(TRACE_ID_HEADER) {
                head.reply.trace_id = Some(value()?.to_string()).filter(|v| !v.is_empty());
            }
        }
        Ok(head)
    }
}

fn read_exact_body(reader: &mut impl Read, length: usize) -> Result<Vec<u8>, RuntimeApiError> {
    check_size(length)?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(body)
}

fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, RuntimeApiError> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        reader
            .take(MAX_HEAD_BYTES as u64)
            .read_until(b'\n', &mut line)?;
        let size = match httparse::parse_chunk_size(&line) {
            Ok(httparse::Status::Complete((_, size))) => {
                usize::try_from(size).map_err(|_| malformed("chunk size out of range"))?
            }
            _ => return Err(malformed("bad chunk size line")),
        };
        if size == 0 {
            break;
        }
        check_size(body.len().saturating_add(size))?;
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(malformed("chunk not followed by CRLF"));
        }
    }
    // Trailers, if any, end with a blank line.
    loop {
        line.clear();
        let read = reader
            .take(MAX_HEAD_BYTES as u64)
            .read_until(b'\n', &mut line)?;
        if read == 0 || line == b"\r\n" || line == b"\n" {
            return Ok(body);
        }
    }
}

fn check_size(length: usize) -> Result<(), RuntimeApiError> {
    if length > MAX_PAYLOAD_BYTES {
        Err(malformed(&format!(
            "body of {length} bytes is over the {MAX_PAYLOAD_BYTES}-byte bound"
        )))
    } else {
        Ok(())
    }
}

fn malformed(problem: &str) -> RuntimeApiError {
    RuntimeApiError::Malformed(problem.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;

    /// Reads a reply that arrived in one piece, and checks that the same
    /// bytes arriving a few at a time read the same.
    fn parse(bytes: &[u8]) -> Result<(Reply, bool), RuntimeApiError> {
        let whole = read_reply(&mut Cursor::new(bytes.to_vec()));
        let trickled = read_reply(&mut BufReader::with_capacity(
            5,
            Cursor::new(bytes.to_vec()),
        ));
        assert_eq!(format!("{whole:?}"), format!("{trickled:?}"));
        whole
    }

    #[test]
    fn skips_blank_lines_before_a_reply_and_refuses_an_endless_head() {
        let (reply, _) =
            parse(b"\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(reply.status, 202);
        let mut endless = b"HTTP/1.1 200 OK\r\nX-Filler: ".to_vec();
        endless.resize(MAX_HEAD_BYTES + 100, b'a');
        let err = read_reply(&mut Cursor::new(endless)).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n").is_err());
        assert!(parse(b"HTP/1.1 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn reads_a_next_event_with_content_length() {
        let (reply, keep_alive) = parse(
            b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: abc\r\n\
              Lambda-Runtime-Trace-Id: Root=1-2-3\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
        )
        .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.request_id.as_deref(), Some("abc"));
        assert_eq!(reply.trace_id.as_deref(), Some("Root=1-2-3"));
        assert_eq!(reply.body, b"{\"a\":1}");
        assert!(keep_alive);
    }

    #[test]
    fn reads_a_chunked_body_and_its_trailers() {
        let (reply, keep_alive) = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n",
        )
        .unwrap();
        assert_eq!(reply.body, b"{\"a\":1}");
        assert!(keep_alive);
    }

    #[test]
    fn a_body_without_framing_ends_the_connection() {
        let (reply, keep_alive) =
            parse(b"HTTP/1.1 202 Accepted\r\n\r\n{\"status\":\"OK\"}").unwrap();
        assert_eq!(reply.status, 202);
        assert_eq!(reply.body, b"{\"status\":\"OK\"}");
        assert!(!keep_alive);
        let (_, keep_alive) =
            parse(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        assert!(!keep_alive);
    }

    #[test]
    fn refuses_broken_responses() {
        for broken in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"garbage\r\n\r\n",
            b"",
        ] {
            assert!(
                parse(broken).is_err(),
                "{:?}",
                String::from_utf8_lossy(broken)
            );
        }
    }

    /// A Runtime API peer on 127.0.0.1 that answers each connection's
    /// requests from `script`, one canned response per request, then closes
    /// it; it reports every request it read.
    fn peer(script: Vec<Vec<&'static [u8]>>) -> (String, mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (sender, requests) = mpsc::channel();
        thread::spawn(move || {
            for answers in script {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                for answer in answers {
                    let _ = sender.send(read_request(&mut reader));
                    reader.get_mut().write_all(answer).unwrap();
                }
            }
        });
        (address, requests)
    }

    /// One request, head and body, as a peer reads it.
    fn read_request(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            assert!(reader.read_until(b'\n', &mut request).unwrap() > 0);
        }
        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
        let length = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        request.extend_from_slice(&body);
        request
    }

    #[test]
    fn the_next_request_goes_out_behind_the_answer_without_waiting_for_its_reply() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let peer = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream);
            let first_next = read_request(&mut reader);
            reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nContent-Length: 2\r\n\r\n{}")
                .unwrap();
            // A client that waited for the 202 before asking again would
            // time out here.
            let answer = read_request(&mut reader);
            let second_next = read_request(&mut reader);
            reader
                .get_mut()
                .write_all(
                    b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n\
                      HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r2\r\nContent-Length: 4\r\n\r\nnull",
                )
                .unwrap();
            [first_next, answer, second_next].map(|r| String::from_utf8(r).unwrap())
        });
        let mut api = RuntimeApi::new(&address).with_timeout(Duration::from_secs(5));
        assert_eq!(api.next_invocation().unwrap().request_id, "r1");
        api.respond("r1", b"{}").unwrap();
        let second = api.next_invocation().unwrap();
        assert_eq!(
            (second.request_id.as_str(), &second.event[..]),
            ("r2", &b"null"[..])
        );
        let [first_next, answer, second_next] = peer.join().unwrap();
        assert!(first_next.starts_with(&format!("GET {NEXT_PATH} HTTP/1.1\r\n")));
        assert!(answer.starts_with("POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1\r\n"));
        assert!(second_next.starts_with(&format!("GET {NEXT_PATH} HTTP/1.1\r\n")));
    }

    #[test]
    fn one_connection_carries_the_loop_and_a_closed_one_is_reopened() {
        let (address, requests) = peer(vec![
            vec![
                b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nContent-Length: 2\r\n\r\n{}",
                b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
            ],
            vec![
                b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r2\r\nContent-Length: 4\r\n\r\nnull",
                b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
            ],
        ]);
        let mut api = RuntimeApi::new(&address).with_timeout(Duration::from_secs(5));
        let first = api.next_invocation().unwrap();
        assert_eq!(first.request_id, "r1");
        assert_eq!(first.event, b"{}");
        api.respond("r1", b"{\"ok\":true}").unwrap();
        // The peer closed the first connection after two answers.
        let second = api.next_invocation().unwrap();
        assert_eq!(second.request_id, "r2");
        api.fail("r2", "Verdict.UnsupportedEvent", "not a gateway event")
            .unwrap();

        let texts: Vec<String> = requests
            .try_iter()
            .map(|r| String::from_utf8(r).unwrap())
            .collect();
        assert_eq!(texts.len(), 4, "{texts:?}");
        assert!(texts[0].starts_with(&format!("GET {NEXT_PATH} HTTP/1.1\r\n")));
        assert!(
            texts[1].starts_with("POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1\r\n")
        );
        assert!(texts[1].ends_with("\r\n\r\n{\"ok\":true}"));
        assert!(texts[3].starts_with("POST /2018-06-01/runtime/invocation/r2/error HTTP/1.1\r\n"));
        assert!(
            texts[3].contains("lambda-runtime-function-error-type: Verdict.UnsupportedEvent\r\n")
        );
        assert!(texts[3].ends_with(
            r#"{"errorMessage":"not a gateway event","errorType":"Verdict.UnsupportedEvent"}"#
        ));
    }

    #[test]
    fn an_event_without_a_request_id_or_a_refused_post_is_an_error() {
        let (address, _requests) = peer(vec![vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
            b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\n\r\n",
        ]]);
        let mut api = RuntimeApi::new(&address).with_timeout(Duration::from_secs(5));
        assert!(matches!(
            api.next_invocation(),
            Err(RuntimeApiError::MissingRequestId)
        ));
        assert!(matches!(
            api.respond("r1", b"{}"),
            Err(RuntimeApiError::Status { status: 413, .. })
        ));
    }

    #[test]
    fn nothing_listening_is_a_connect_error_naming_the_address() {
        let address = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        };
        let err = RuntimeApi::new(&address)
            .with_timeout(Duration::from_secs(5))
            .fail_init("Verdict.ConfigInvalid", "bad")
            .unwrap_err();
        assert!(err.to_string().contains(&address), "{err}");
        let err = RuntimeApi::new("not an address")
            .next_invocation()
            .unwrap_err();
        assert!(matches!(err, RuntimeApiError::Connect { .. }), "{err}");
    }
}
