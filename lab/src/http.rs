//! A small HTTP/1.1 client over a std `TcpStream`: enough for tests to send one request and
//! read one response, with errors that say which part of the exchange failed.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::error::{Stage, TrafficError};

/// A request for [`crate::Lab::http`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// `http://<ip or lab place>[:port]/path?query`; IPv6 literals in brackets.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// What a URL resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub addr: SocketAddr,
    /// `Host` header: the URL's authority as written.
    pub host: String,
    /// Path and query, `/` when the URL has none.
    pub path: String,
}

/// Parses `http://host[:port][/path]`. `host` is an IPv4 literal, a bracketed IPv6 literal, or a
/// name that `resolve` turns into an address (lab places).
pub(crate) fn parse_url(
    url: &str,
    resolve: impl Fn(&str) -> Option<IpAddr>,
) -> Result<Target, TrafficError> {
    let bad = |message: &str| TrafficError::Url {
        url: url.to_string(),
        message: message.to_string(),
    };
    let rest = url
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .map(|_| &url[7..])
        .ok_or_else(|| bad("only http:// URLs are supported"))?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (v6, after) = inner.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after `]`"))?),
        };
        let ip: IpAddr = v6.parse().map_err(|_| bad("bad IPv6 address"))?;
        (ip, port)
    } else {
        let (name, port) = match authority.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        };
        let ip = match name.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => resolve(name)
                .ok_or_else(|| bad("host is neither an IP address nor a place of the lab"))?,
        };
        (ip, port)
    };
    let port = match port {
        None => 80,
        Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
    };
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok(Target {
        addr: SocketAddr::new(host, port),
        host: authority.to_string(),
        path,
    })
}

/// The request's bytes: `Connection: close`, `Content-Length` when there is a body or the
/// method usually has one.
pub(crate) fn encode(request: &HttpRequest, target: &Target) -> Vec<u8> {
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, target.path);
    let has = |name: &str| {
        request
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if !has("host") {
        head.push_str(&format!("Host: {}\r\n", target.host));
    }
    if !has("user-agent") {
        head.push_str("User-Agent: weir-lab\r\n");
    }
    if !has("connection") {
        head.push_str("Connection: close\r\n");
    }
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let wants_length =
        !request.body.is_empty() || matches!(request.method.as_str(), "POST" | "PUT" | "PATCH");
    if wants_length && !has("content-length") && !has("transfer-encoding") {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&request.body);
    bytes
}

/// Why an exchange failed: an I/O error at a stage, or a malformed response.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    Io(Stage, io::Error),
    Protocol(String),
}

/// Sends the request and reads the whole response before `deadline`.
pub(crate) fn exchange(
    stream: &mut TcpStream,
    request: &HttpRequest,
    target: &Target,
    deadline: Instant,
) -> Result<HttpResponse, ExchangeError> {
    let remaining = |stage| {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| ExchangeError::Io(stage, io::Error::from(io::ErrorKind::TimedOut)))
    };
    stream
        .set_write_timeout(Some(remaining(Stage::Send)?))
        .map_err(|e| ExchangeError::Io(Stage::Send, e))?;
    stream
        .write_all(&encode(request, target))
        .map_err(|e| ExchangeError::Io(Stage::Send, e))?;
    let mut reader = Reader {
        stream,
        buf: Vec::new(),
        eof: false,
    };
    let head_end = loop {
        if let Some(pos) = find(&reader.buf, b"\r\n\r\n") {
            break pos;
        }
        if reader.eof {
            return Err(ExchangeError::Protocol(format!(
                "connection closed after {} bytes, before a complete response header",
                reader.buf.len()
            )));
        }
        reader.fill(remaining(Stage::Receive)?)?;
    };
    let head = String::from_utf8_lossy(&reader.buf[..head_end]).into_owned();
    reader.buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|_| version.starts_with("HTTP/"))
        .ok_or_else(|| ExchangeError::Protocol(format!("bad status line `{status_line}`")))?;
    let reason = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut response = HttpResponse {
        status,
        reason,
        headers,
        body: Vec::new(),
    };
    if request.method.eq_ignore_ascii_case("HEAD")
        || status == 204
        || status == 304
        || status / 100 == 1
    {
        return Ok(response);
    }
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        response.body = read_chunked(&mut reader, &remaining)?;
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| ExchangeError::Protocol(format!("bad Content-Length `{length}`")))?;
        while reader.buf.len() < length {
            if reader.eof {
                return Err(ExchangeError::Protocol(format!(
                    "connection closed after {} of {length} body bytes",
                    reader.buf.len()
                )));
            }
            reader.fill(remaining(Stage::Receive)?)?;
        }
        reader.buf.truncate(length);
        response.body = std::mem::take(&mut reader.buf);
    } else {
        while !reader.eof {
            reader.fill(remaining(Stage::Receive)?)?;
        }
        response.body = std::mem::take(&mut reader.buf);
    }
    Ok(response)
}

fn read_chunked(
    reader: &mut Reader<'_>,
    remaining: &dyn Fn(Stage) -> Result<Duration, ExchangeError>,
) -> Result<Vec<u8>, ExchangeError> {
    let mut body = Vec::new();
    loop {
        let line = reader.line(remaining)?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ExchangeError::Protocol(format!("bad chunk size `{size_text}`")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !reader.line(remaining)?.is_empty() {}
            return Ok(body);
        }
        while reader.buf.len() < size + 2 {
            if reader.eof {
                return Err(ExchangeError::Protocol(
                    "connection closed inside a chunk".into(),
                ));
            }
            reader.fill(remaining(Stage::Receive)?)?;
        }
        body.extend(reader.buf.drain(..size));
        reader.buf.drain(..2);
    }
}

struct Reader<'a> {
    stream: &'a mut TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Reader<'_> {
    fn fill(&mut self, timeout: Duration) -> Result<(), ExchangeError> {
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| ExchangeError::Io(Stage::Receive, e))?;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => self.eof = true,
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ExchangeError::Io(Stage::Receive, e)),
        }
        Ok(())
    }

    fn line(
        &mut self,
        remaining: &dyn Fn(Stage) -> Result<Duration, ExchangeError>,
    ) -> Result<String, ExchangeError> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                self.buf.drain(..pos + 2);
                return Ok(line);
            }
            if self.eof {
                return Err(ExchangeError::Protocol(
                    "connection closed inside a chunked body".into(),
                ));
            }
            self.fill(remaining(Stage::Receive)?)?;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn no_names(_: &str) -> Option<IpAddr> {
        None
    }

    #[test]
    fn parses_urls() {
        let t = parse_url("http://10.200.1.12/api/v1/users?id=1", no_names).unwrap();
        assert_eq!(t.addr.to_string(), "10.200.1.12:80");
        assert_eq!(t.host, "10.200.1.12");
        assert_eq!(t.path, "/api/v1/users?id=1");
        let t = parse_url("HTTP://[fd00:200:1::12]:8080", no_names).unwrap();
        assert_eq!(t.addr.to_string(), "[fd00:200:1::12]:8080");
        assert_eq!(t.host, "[fd00:200:1::12]:8080");
        assert_eq!(t.path, "/");
        let t = parse_url("http://users-0:80?x", |n| {
            (n == "users-0").then(|| "10.200.1.12".parse().unwrap())
        })
        .unwrap();
        assert_eq!(
            (t.addr.to_string().as_str(), t.path.as_str()),
            ("10.200.1.12:80", "/?x")
        );
        for bad in [
            "https://1.2.3.4/",
            "http:///x",
            "http://[::1/",
            "http://1.2.3.4:99999/",
            "http://nowhere/",
        ] {
            assert!(
                matches!(parse_url(bad, no_names), Err(TrafficError::Url { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn encodes_requests() {
        let target = parse_url("http://10.0.0.1:8080/x", no_names).unwrap();
        let req = HttpRequest::new("POST", "http://10.0.0.1:8080/x")
            .header("Content-Type", "application/json")
            .body("{}");
        let text = String::from_utf8(encode(&req, &target)).unwrap();
        assert_eq!(
            text,
            "POST /x HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUser-Agent: weir-lab\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
        let get = String::from_utf8(encode(&HttpRequest::new("GET", ""), &target)).unwrap();
        assert!(!get.contains("Content-Length"), "{get}");
    }

    /// Serves one canned response on loopback and returns what the client made of it.
    fn against(response: &'static [u8], method: &str) -> Result<HttpResponse, ExchangeError> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            conn.write_all(response).unwrap();
        });
        let url = format!("http://{addr}/");
        let target = parse_url(&url, no_names).unwrap();
        let mut stream = TcpStream::connect(addr).unwrap();
        let result = exchange(
            &mut stream,
            &HttpRequest::new(method, url),
            &target,
            Instant::now() + Duration::from_secs(5),
        );
        server.join().unwrap();
        result
    }

    #[test]
    fn reads_length_chunked_and_eof_bodies() {
        let r = against(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "GET").unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.text().as_str()),
            (200, "OK", "hello")
        );
        let r = against(
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nacces\r\n9;x=y\r\ns denied\n\r\n0\r\n\r\n",
            "GET",
        )
        .unwrap();
        assert_eq!((r.status, r.text().as_str()), (403, "access denied\n"));
        let r = against(b"HTTP/1.0 200 OK\r\nX-A: b\r\n\r\nuntil eof", "GET").unwrap();
        assert_eq!(
            (r.header("x-a"), r.text().as_str()),
            (Some("b"), "until eof")
        );
        let r = against(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD").unwrap();
        assert!(r.body.is_empty());
        assert!(matches!(
            against(b"HTTP/1.1 200 OK\r\nContent-Le", "GET"),
            Err(ExchangeError::Protocol(_))
        ));
        assert!(matches!(
            against(b"SSH-2.0-x\r\n\r\n", "GET"),
            Err(ExchangeError::Protocol(_))
        ));
    }
}
