//! [`ScriptedServer`]: a hand-written HTTP/1.1 server whose every response is decided by
//! the test, able to misbehave in ways no real server does.
//!
//! * One request per connection: every response carries `Connection: close` and the
//!   connection is closed after it (clients simply reconnect).
//! * Each connection is served on its own thread, so a stalled response does not block
//!   other requests.
//! * Requests are recorded (method, target, headers, body) before the handler runs.
//! * A TLS ClientHello (some clients, like skopeo with `--tls-verify=false`, try HTTPS
//!   first) gets a plain `400` and a close, so the client falls back to HTTP quickly; it
//!   is not recorded.
//! * If the handler panics, the client gets a `500` with the panic message.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http::{self, find_header};

/// How long a server connection waits for the client's request bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One request received by a [`ScriptedServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// 0-based arrival order across the server's lifetime.
    pub index: usize,
    /// e.g. `GET`.
    pub method: String,
    /// The request target: path and query, e.g. `/v2/repo/tags/list?n=10`.
    pub target: String,
    /// Headers in the order received.
    pub headers: Vec<(String, String)>,
    /// The request body (de-chunked).
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

/// A response for a [`ScriptedServer`] to send, with optional faults.
///
/// Unless `headers` has a `Content-Length` (kept verbatim, even if it lies), one is
/// computed from `body`. For `HEAD` requests the body is never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedResponse {
    /// Status code.
    pub status: u16,
    /// Headers to send (`Connection: close` is always added).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    delay: Option<Duration>,
    truncate_after: Option<usize>,
    stall: Option<(usize, Duration)>,
    release: Option<Release>,
    drop_connection: bool,
}

/// Ends a stall started by [`ScriptedResponse::stall_until`] when the test says so.
#[derive(Debug, Clone, Default)]
pub struct Release(Arc<AtomicBool>);

impl Release {
    /// A release not yet given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets every response stalled on this release send the rest of its body.
    pub fn release(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn given(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl PartialEq for Release {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Release {}

impl ScriptedResponse {
    /// A response with `status`, no headers, empty body.
    pub fn new(status: u16) -> Self {
        ScriptedResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: None,
            truncate_after: None,
            stall: None,
            release: None,
            drop_connection: false,
        }
    }

    /// `200` with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self::new(200).body(body)
    }

    /// `status` with a JSON body and `Content-Type: application/json`.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status)
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(value).expect("serialize JSON"))
    }

    /// Closes the connection without sending anything (a "connection reset" fault).
    pub fn drop_connection() -> Self {
        let mut r = Self::new(0);
        r.drop_connection = true;
        r
    }

    /// Adds a header (keeps existing ones with the same name).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets header `name`, replacing every existing value.
    pub fn set_header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.header(name, value)
    }

    /// Removes every header `name`.
    pub fn remove_header(mut self, name: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    /// First value of header `name` (case-insensitive).
    pub fn get_header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Waits `delay` before sending anything (slow headers).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Announces the full body length but closes the connection after `n` body bytes.
    pub fn truncate_body_after(mut self, n: usize) -> Self {
        self.truncate_after = Some(n);
        self
    }

    /// Sends `n` body bytes, waits `duration` (headers and those bytes already flushed),
    /// then sends the rest. The wait ends early if the server is dropped.
    pub fn stall_after(mut self, n: usize, duration: Duration) -> Self {
        self.stall = Some((n, duration));
        self
    }

    /// Like [`ScriptedResponse::stall_after`], but the stall also ends when `release` is
    /// given: a test holds a download mid-body while it checks what the client did so far.
    pub fn stall_until(mut self, n: usize, at_most: Duration, release: &Release) -> Self {
        self.stall = Some((n, at_most));
        self.release = Some(release.clone());
        self
    }
}

type Handler = dyn Fn(&RecordedRequest) -> ScriptedResponse + Send + Sync + 'static;

struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    next_index: Mutex<usize>,
    shutdown: AtomicBool,
    handler: Box<Handler>,
}

/// A scripted HTTP/1.1 server on `127.0.0.1:<free port>`, stopped on drop.
///
/// ```no_run
/// use ocisdk_testkit::{ScriptedServer, ScriptedResponse, forward, Registry};
/// let registry = Registry::start();
/// let upstream = registry.url();
/// // The first request gets a 429, everything after goes to the real registry.
/// let server = ScriptedServer::start(move |req| {
///     if req.index == 0 {
///         ScriptedResponse::new(429).header("Retry-After", "0")
///     } else {
///         forward(req, &upstream)
///     }
/// });
/// ```
pub struct ScriptedServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ScriptedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ScriptedServer {
    /// Starts a server answering each request with `handler(&request)`.
    #[track_caller]
    pub fn start(
        handler: impl Fn(&RecordedRequest) -> ScriptedResponse + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            next_index: Mutex::new(0),
            shutdown: AtomicBool::new(false),
            handler: Box::new(handler),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = std::thread::Builder::new()
            .name(format!("scripted-server-{}", addr.port()))
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("spawn accept thread");
        ScriptedServer {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    /// A server forwarding every request unchanged to `upstream` (see [`forward`]).
    #[track_caller]
    pub fn proxy_to(upstream: &str) -> Self {
        let upstream = upstream.to_string();
        Self::start(move |req| forward(req, &upstream))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    /// How many requests were received so far.
    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().expect("requests lock").len()
    }

    /// Forgets the recorded requests (indexes keep counting).
    pub fn clear_requests(&self) {
        self.shared.requests.lock().expect("requests lock").clear();
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let conn_shared = Arc::clone(&shared);
        let _ = std::thread::Builder::new()
            .name("scripted-conn".into())
            .spawn(move || {
                let _ = serve_connection(stream, &conn_shared);
            });
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let result = serve_request(stream, &mut writer, shared);
    close_gracefully(&mut writer);
    result
}

/// Half-closes and drains what the client still sends (briefly), so the close is a FIN
/// the client reads as end-of-stream rather than a reset caused by unread input.
fn close_gracefully(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let end = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

fn serve_request(stream: TcpStream, writer: &mut TcpStream, shared: &Shared) -> io::Result<()> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first)? == 0 {
        return Ok(());
    }
    if first[0] == 0x16 {
        // TLS handshake record: not for us.
        writer.write_all(b"HTTP/1.0 400 Bad Request\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    }
    let mut reader = BufReader::new(stream);
    let (start, headers) = match http::read_head(&mut reader) {
        Ok(h) => h,
        Err(_) => {
            let _ = writer.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
            return Ok(());
        }
    };
    let mut parts = start.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    if find_header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body = http::read_body(&mut reader, &headers, false)?;

    let request = {
        let mut next = shared.next_index.lock().expect("index lock");
        let request = RecordedRequest {
            index: *next,
            method,
            target,
            headers,
            body,
        };
        *next += 1;
        shared
            .requests
            .lock()
            .expect("requests lock")
            .push(request.clone());
        request
    };

    let response = match catch_unwind(AssertUnwindSafe(|| (shared.handler)(&request))) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "handler panicked".to_string());
            ScriptedResponse::new(500).body(format!("ScriptedServer handler panicked: {msg}"))
        }
    };
    let is_head = request.method.eq_ignore_ascii_case("HEAD");
    send_response(writer, &response, is_head, &shared.shutdown)
}

fn send_response(
    w: &mut TcpStream,
    resp: &ScriptedResponse,
    is_head: bool,
    shutdown: &AtomicBool,
) -> io::Result<()> {
    if let Some(d) = resp.delay {
        interruptible_sleep(d, shutdown, None);
    }
    if resp.drop_connection {
        return Ok(());
    }
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        resp.status,
        http::reason_phrase(resp.status)
    );
    for (k, v) in &resp.headers {
        if !k.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if find_header(&resp.headers, "content-length").is_none() {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    w.write_all(head.as_bytes())?;
    w.flush()?;
    if is_head {
        return Ok(());
    }
    let limit = resp
        .truncate_after
        .unwrap_or(usize::MAX)
        .min(resp.body.len());
    let body = &resp.body[..limit];
    match resp.stall {
        Some((n, d)) => {
            let n = n.min(body.len());
            w.write_all(&body[..n])?;
            w.flush()?;
            interruptible_sleep(d, shutdown, resp.release.as_ref());
            w.write_all(&body[n..])?;
        }
        None => w.write_all(body)?,
    }
    w.flush()
}

/// Sleeps for `d`, checking every 10 ms whether the server is shutting down or the stall
/// was released.
fn interruptible_sleep(d: Duration, shutdown: &AtomicBool, release: Option<&Release>) {
    let end = Instant::now() + d;
    while !shutdown.load(Ordering::SeqCst) && !release.is_some_and(Release::given) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(10)));
    }
}

/// The credentials in the query of the URL [`redirect_to_unreachable_signed_url`]
/// redirects to: a test checks that none of them is ever shown.
pub const SIGNED_URL_SECRETS: [&str; 2] = ["AKIAEXAMPLE", "TOPSECRETSIG"];

/// A registry that answers every request with a `307` to a signed storage URL (S3-style,
/// its query is the credential) on a loopback port nothing listens on, so that following
/// the redirect fails before any answer. Also returns the URL's `host:port/path`, which an
/// error may show.
pub fn redirect_to_unreachable_signed_url() -> (ScriptedServer, String) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = closed.local_addr().expect("local address").port();
    drop(closed);
    let [credential, signature] = SIGNED_URL_SECRETS;
    let storage = format!(
        "http://127.0.0.1:{port}/bucket/blob?X-Amz-Credential={credential}&X-Amz-Signature={signature}"
    );
    let place = format!("127.0.0.1:{port}/bucket/blob");
    let registry =
        ScriptedServer::start(move |_| ScriptedResponse::new(307).header("Location", &storage));
    (registry, place)
}

/// Forwards `req` to `upstream` (`http://host:port`, e.g. [`crate::Registry::url`]) with
/// a plain blocking HTTP/1.1 request, and returns the upstream response as a
/// [`ScriptedResponse`] the handler may alter before returning it.
///
/// The request keeps its method, target, body and headers, including `Host`, so URLs the
/// upstream builds from it (such as upload `Location`s) point back at the scripted
/// server. Hop-by-hop headers are dropped both ways; the response body is de-chunked and
/// its `Content-Length` recomputed, except for `HEAD`, where the upstream's is kept.
/// If the upstream cannot be reached, the result is a `502` with the error as body.
pub fn forward(req: &RecordedRequest, upstream: &str) -> ScriptedResponse {
    let url = format!("{}{}", upstream.trim_end_matches('/'), req.target);
    match http::request(&req.method, &url, &forwarded_headers(req), &req.body) {
        Ok(resp) => {
            let is_head = req.method.eq_ignore_ascii_case("HEAD");
            let headers = resp
                .headers
                .into_iter()
                .filter(|(k, _)| {
                    let hop = HOP.iter().any(|h| k.eq_ignore_ascii_case(h));
                    !hop || (is_head && k.eq_ignore_ascii_case("content-length"))
                })
                .collect();
            let mut r = ScriptedResponse::new(resp.status).body(resp.body);
            r.headers = headers;
            r
        }
        Err(e) => ScriptedResponse::new(502).body(format!("forward to {url} failed: {e}")),
    }
}

/// Forwards `req` to `upstream` like [`forward`], but the upstream connection breaks off
/// after `sent` bytes of the request body, and the client gets a `502`, as from a proxy
/// whose upstream connection failed mid-upload. The upstream's own answer to the cut
/// request (if any) is waited for first, so whatever the upstream did with the bytes it
/// got is done before the client can send anything else; it is in the `502`'s body.
pub fn forward_cut(req: &RecordedRequest, upstream: &str, sent: usize) -> ScriptedResponse {
    let url = format!("{}{}", upstream.trim_end_matches('/'), req.target);
    let upstream_said =
        match http::request_cut(&req.method, &url, &forwarded_headers(req), &req.body, sent) {
            Ok(resp) => format!("HTTP {}: {}", resp.status, resp.text()),
            Err(e) => format!("no answer: {e}"),
        };
    ScriptedResponse::new(502).body(format!(
        "upstream connection cut after {sent} of {} body bytes; the upstream said {upstream_said}",
        req.body.len()
    ))
}

/// Headers that are not forwarded: hop-by-hop, and `Content-Length` (recomputed).
const HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
];

/// `req`'s headers without the hop-by-hop ones.
fn forwarded_headers(req: &RecordedRequest) -> Vec<(&str, &str)> {
    req.headers
        .iter()
        .filter(|(k, _)| !HOP.iter().any(|h| k.eq_ignore_ascii_case(h)))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}
