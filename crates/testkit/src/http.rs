//! A minimal blocking HTTP/1.1 client and message parsing shared by the testkit.
//!
//! Only `http://` URLs, one request per connection (`Connection: close`), bodies fully
//! buffered. Response bodies framed by `Content-Length`, `Transfer-Encoding: chunked` or
//! end-of-connection are understood. Good enough for readiness checks, forwarding to a
//! loopback registry and ad-hoc assertions in tests; not a general client.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a client socket waits for the peer before giving up.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for a request/response head (start line + headers).
const MAX_HEAD: usize = 64 * 1024;

/// A fully read HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Headers in the order received (names as sent by the server).
    pub headers: Vec<(String, String)>,
    /// The de-chunked body (empty for HEAD, 1xx, 204 and 304).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as (lossy) UTF-8, for messages and assertions.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// First value of header `name` (case-insensitive) in `headers`.
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Splits `http://host[:port][/path?query]` into (`host:port`, `/path?query`).
pub fn split_url(url: &str) -> io::Result<(String, String)> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("only http:// URLs are supported: {url}"),
        )
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_string()))
}

/// `GET url` with no extra headers.
pub fn get(url: &str) -> io::Result<HttpResponse> {
    request("GET", url, &[], &[])
}

/// Sends one request and reads the whole response.
///
/// A `Host` header is added unless `headers` has one; `Content-Length` is always computed
/// from `body` (and sent for any non-empty body or for POST/PUT/PATCH); `Connection: close`
/// is always sent. Any `Content-Length`, `Transfer-Encoding` or `Connection` in `headers`
/// is ignored.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    exchange(method, url, headers, body, body.len())
}

/// Like [`request`], but the connection breaks off after `sent` bytes of `body` (the head
/// still announces all of it): the write side is closed, and the answer, if the server
/// gives one, is read. A client or proxy dying mid-upload, as the server sees it.
pub fn request_cut(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    sent: usize,
) -> io::Result<HttpResponse> {
    exchange(method, url, headers, body, sent.min(body.len()))
}

/// Sends a request with the first `sent` bytes of `body` (closing the write side when that
/// is not all of it) and reads the answer.
fn exchange(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    sent: usize,
) -> io::Result<HttpResponse> {
    let (authority, target) = split_url(url)?;
    let mut stream = TcpStream::connect(&authority)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;

    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {authority}\r\n"));
    }
    for (k, v) in headers {
        let skip = ["content-length", "transfer-encoding", "connection"]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h));
        if !skip {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body[..sent])?;
    stream.flush()?;
    if sent < body.len() {
        stream.shutdown(std::net::Shutdown::Write)?;
    }

    let mut reader = BufReader::new(stream);
    let (start, headers) = read_head(&mut reader)?;
    let status = parse_status_line(&start)?;
    let no_body = method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304;
    let body = if no_body {
        Vec::new()
    } else {
        read_body(&mut reader, &headers, true)?
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Reads a start line and headers up to the empty line. Fails on EOF before the end of
/// the head or on a head larger than 64 KiB.
pub(crate) fn read_head<R: BufRead>(reader: &mut R) -> io::Result<(String, Vec<(String, String)>)> {
    let mut total = 0usize;
    let mut start = String::new();
    let mut headers = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the end of the HTTP head",
            ));
        }
        total += n;
        if total > MAX_HEAD {
            return Err(invalid("HTTP head larger than 64 KiB"));
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        if start.is_empty() {
            if line.is_empty() {
                continue; // tolerate stray CRLF before the start line
            }
            start = line.to_string();
        } else if line.is_empty() {
            return Ok((start, headers));
        } else {
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| invalid(&format!("malformed header line: {line:?}")))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

/// Reads a message body framed by `headers`: chunked, `Content-Length`, or (only if
/// `until_eof_allowed`, i.e. for responses) everything until the peer closes.
pub(crate) fn read_body<R: BufRead>(
    reader: &mut R,
    headers: &[(String, String)],
    until_eof_allowed: bool,
) -> io::Result<Vec<u8>> {
    let chunked = find_header(headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return read_chunked(reader);
    }
    if let Some(len) = find_header(headers, "content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| invalid(&format!("bad Content-Length: {len:?}")))?;
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("body shorter than its Content-Length of {len}: {e}"),
            )
        })?;
        return Ok(body);
    }
    let mut body = Vec::new();
    if until_eof_allowed {
        reader.read_to_end(&mut body)?;
    }
    Ok(body)
}

fn read_chunked<R: BufRead>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunked body",
            ));
        }
        let size_hex = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| invalid(&format!("bad chunk size line: {line:?}")))?;
        if size == 0 {
            // Skip trailers up to the final empty line.
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn parse_status_line(line: &str) -> io::Result<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(&format!("not an HTTP/1.x status line: {line:?}")));
    }
    parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(&format!("bad status line: {line:?}")))
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Standard reason phrase for common status codes (empty if unknown).
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_url_handles_paths_and_default_port() {
        assert_eq!(
            split_url("http://127.0.0.1:5000/v2/a?n=1").unwrap(),
            ("127.0.0.1:5000".to_string(), "/v2/a?n=1".to_string())
        );
        assert_eq!(
            split_url("http://example").unwrap(),
            ("example:80".to_string(), "/".to_string())
        );
        assert!(split_url("https://x/").is_err());
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n";
        let mut r = BufReader::new(&raw[..]);
        let (start, headers) = read_head(&mut r).unwrap();
        assert_eq!(parse_status_line(&start).unwrap(), 200);
        assert_eq!(read_body(&mut r, &headers, true).unwrap(), b"abcde");
    }

    #[test]
    fn short_content_length_body_is_an_error() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        let mut r = BufReader::new(&raw[..]);
        let (_, headers) = read_head(&mut r).unwrap();
        let err = read_body(&mut r, &headers, true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
