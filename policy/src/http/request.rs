//! HTTP/1.x request heads and request streams, in the exact grammar the kernel implements.
//!
//! Request line: `method SP target SP version CRLF` with method `1*tchar`, target `*` or `/`
//! followed by bytes in `0x21..=0x7E | 0x80..=0xFF`, version `HTTP/1.0` or `HTTP/1.1`. Header
//! line: `name ":" value CRLF` with name `1*tchar` (nothing before the colon), value bytes
//! anything but `0x00..=0x08 | 0x0A..=0x1F | 0x7F` (no obs-fold, no bare LF, no lone CR). An
//! empty line ends the head, which is at most [`MAX_HEAD_LEN`] bytes long.
//!
//! The parser reads bytes in order and stops at the first one that no continuation can make
//! valid (`Malformed`). Checks that need a whole token or line happen when it ends:
//!
//! - at the SP after the method: `CONNECT` → `Unsupported`;
//! - at the LF of the request line: `PRI * HTTP/2.0` (the HTTP/2 preface) → `Unsupported` (the
//!   version `HTTP/2.0` is accepted byte by byte only after `PRI *`);
//! - at the LF of a header line, in this order: `Content-Length` after a `Content-Length` or a
//!   `Transfer-Encoding` → `Malformed`, a value other than `1*DIGIT` or above 2^32-1 →
//!   `Malformed`; `Transfer-Encoding` after a `Transfer-Encoding` or a `Content-Length` →
//!   `Malformed`, a value other than `chunked` (ASCII case-insensitive) → `Unsupported`; a
//!   second `Host` → `Malformed`; `Upgrade` → `Unsupported`. Values are compared trimmed.
//!
//! When [`MAX_HEAD_LEN`] bytes have arrived without the head completing or failing, the result
//! is `TooLong`.
//!
//! Bodies: `Content-Length: n` is followed by `n` bytes; `Transfer-Encoding: chunked` by chunks
//! (`1*8HEXDIG [";" ext] CRLF data CRLF`, where `ext` bytes are HT, `0x20..=0x7E` or
//! `0x80..=0xFF`), a last chunk of size 0 (with an optional extension), trailer lines in the
//! header-line grammar and an empty line; otherwise there is no body.

use super::{MAX_HEAD_LEN, trim_ows};

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Vec<u8>,
    /// The raw request-target.
    pub target: Vec<u8>,
    /// 0 = HTTP/1.0, 1 = HTTP/1.1.
    pub version: u8,
    /// Name as sent; value with leading and trailing OWS (SP, HT) removed.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

impl HttpRequest {
    /// Whether every field has the grammar `parse_request_head` accepts: method `1*tchar`,
    /// target `*` or `/` followed by bytes in `0x21..=0x7E | 0x80..=0xFF`, version 0 or 1,
    /// names `1*tchar`, values without bytes in `0x00..=0x08 | 0x0A..=0x1F | 0x7F`. (The
    /// head-level checks, such as framing headers and a single `Host`, are not included.)
    pub fn is_well_formed(&self) -> bool {
        let token = |t: &[u8]| !t.is_empty() && t.iter().all(|&b| is_tchar(b));
        let target = self.target == b"*"
            || (self.target.first() == Some(&b'/')
                && self.target[1..].iter().all(|&b| is_target_byte(b)));
        token(&self.method)
            && target
            && self.version <= 1
            && self
                .headers
                .iter()
                .all(|(n, v)| token(n) && v.iter().all(|&b| is_value_byte(b)))
    }
}

/// How the body after a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why input is not a request weir can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Breaks the grammar.
    Malformed,
    /// The head is longer than [`MAX_HEAD_LEN`].
    TooLong,
    /// Valid HTTP that weir does not follow: an `Upgrade` header, method `CONNECT`, a transfer
    /// coding other than `chunked`, the HTTP/2 preface.
    Unsupported,
}

/// The result of parsing a head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Complete {
        request: HttpRequest,
        /// Bytes of the head, final CRLF included.
        head_len: usize,
        framing: Framing,
    },
    /// A valid prefix: more bytes are needed.
    Incomplete,
    Invalid(Invalid),
}

/// `tchar` of RFC 9110.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte of an origin-form request-target after the leading `/`.
pub(crate) fn is_target_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// A byte of a header value (HT, visible ASCII, SP, obs-text).
pub(crate) fn is_value_byte(b: u8) -> bool {
    !(b <= 0x08 || (0x0a..=0x1f).contains(&b) || b == 0x7f)
}

const CR: u8 = b'\r';
const LF: u8 = b'\n';

enum Stop {
    NeedMore,
    Invalid(Invalid),
}

use Stop::NeedMore;

fn malformed<T>() -> Result<T, Stop> {
    Err(Stop::Invalid(Invalid::Malformed))
}

fn unsupported<T>() -> Result<T, Stop> {
    Err(Stop::Invalid(Invalid::Unsupported))
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Result<u8, Stop> {
        let b = *self.data.get(self.pos).ok_or(NeedMore)?;
        self.pos += 1;
        Ok(b)
    }

    fn expect(&mut self, want: u8) -> Result<(), Stop> {
        if self.next()? == want {
            Ok(())
        } else {
            malformed()
        }
    }
}

/// Parses one request head at the start of `buf`.
pub fn parse_request_head(buf: &[u8]) -> Parsed {
    let data = &buf[..buf.len().min(MAX_HEAD_LEN)];
    match head(data) {
        Ok((request, head_len, framing)) => Parsed::Complete {
            request,
            head_len,
            framing,
        },
        Err(Stop::Invalid(e)) => Parsed::Invalid(e),
        Err(NeedMore) if buf.len() >= MAX_HEAD_LEN => Parsed::Invalid(Invalid::TooLong),
        Err(NeedMore) => Parsed::Incomplete,
    }
}

const VERSIONS: [&[u8; 8]; 2] = [b"HTTP/1.0", b"HTTP/1.1"];
const PREFACE_VERSION: &[u8; 8] = b"HTTP/2.0";

fn head(data: &[u8]) -> Result<(HttpRequest, usize, Framing), Stop> {
    let mut c = Cursor { data, pos: 0 };
    // Method.
    loop {
        let b = c.next()?;
        if is_tchar(b) {
            continue;
        }
        if b == b' ' && c.pos > 1 {
            break;
        }
        return malformed();
    }
    let method = &data[..c.pos - 1];
    if method == b"CONNECT" {
        return unsupported();
    }
    // Target.
    let target_start = c.pos;
    match c.next()? {
        b'*' => c.expect(b' ')?,
        b'/' => loop {
            let b = c.next()?;
            if is_target_byte(b) {
                continue;
            }
            if b == b' ' {
                break;
            }
            return malformed();
        },
        _ => return malformed(),
    }
    let target = &data[target_start..c.pos - 1];
    // Version.
    let preface = method == b"PRI" && target == b"*";
    let version_start = c.pos;
    for k in 0..8 {
        let b = c.next()?;
        let fits = |v: &[u8; 8]| v[..k] == data[version_start..version_start + k] && v[k] == b;
        if !(VERSIONS.iter().any(|v| fits(v)) || (preface && fits(PREFACE_VERSION))) {
            return malformed();
        }
    }
    c.expect(CR)?;
    c.expect(LF)?;
    let version_text = &data[version_start..version_start + 8];
    if version_text == PREFACE_VERSION {
        return unsupported();
    }
    let version = version_text[7] - b'0';

    let mut headers = Vec::new();
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut host = false;
    loop {
        let first = c.next()?;
        if first == CR {
            c.expect(LF)?;
            break;
        }
        if !is_tchar(first) {
            return malformed();
        }
        let name_start = c.pos - 1;
        loop {
            let b = c.next()?;
            if is_tchar(b) {
                continue;
            }
            if b == b':' {
                break;
            }
            return malformed();
        }
        let name = &data[name_start..c.pos - 1];
        let value_start = c.pos;
        loop {
            let b = c.next()?;
            if b == CR {
                break;
            }
            if !is_value_byte(b) {
                return malformed();
            }
        }
        let value = trim_ows(&data[value_start..c.pos - 1]);
        c.expect(LF)?;
        if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() || chunked {
                return malformed();
            }
            content_length =
                Some(parse_content_length(value).ok_or(Stop::Invalid(Invalid::Malformed))?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked || content_length.is_some() {
                return malformed();
            }
            if !value.eq_ignore_ascii_case(b"chunked") {
                return unsupported();
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"host") {
            if host {
                return malformed();
            }
            host = true;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            return unsupported();
        }
        headers.push((name.to_vec(), value.to_vec()));
    }
    let framing = match (content_length, chunked) {
        (Some(n), _) => Framing::Length(n),
        (None, true) => Framing::Chunked,
        (None, false) => Framing::None,
    };
    Ok((
        HttpRequest {
            method: method.to_vec(),
            target: target.to_vec(),
            version,
            headers,
        },
        c.pos,
        framing,
    ))
}

/// `1*DIGIT` up to 2^32-1.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
        if n > u64::from(u32::MAX) {
            return None;
        }
    }
    Some(n)
}

/// Where a stream is between heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Collecting a head.
    Head,
    /// This many body bytes remain.
    Length(u64),
    Chunked(Chunk),
    /// Invalid input was seen.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Hex digits of the size so far.
    Size {
        digits: u8,
        size: u64,
    },
    Extension {
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
}

/// A byte stream of requests on one connection (keep-alive and pipelining): heads and bodies.
#[derive(Debug, Clone)]
pub struct RequestStream {
    phase: Phase,
    /// Bytes of the head being collected.
    head: Vec<u8>,
    /// Stream offset of the first byte not yet consumed (not counting `head`).
    consumed: u64,
    /// An error found after requests returned by the same `feed`: returned by the next call.
    pending: Option<Invalid>,
    failed: Option<Invalid>,
}

impl Default for RequestStream {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestStream {
    pub fn new() -> Self {
        Self {
            phase: Phase::Head,
            head: Vec::new(),
            consumed: 0,
            pending: None,
            failed: None,
        }
    }

    /// Feeds bytes; returns the requests whose heads completed in them, each with the stream
    /// offset just past its head, and stops at the first invalid input. The error is returned
    /// once: by this call when no request completed before it in these bytes, else by the next
    /// call (which may pass no bytes); later calls return nothing.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<(HttpRequest, u64)>, Invalid> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        if self.phase == Phase::Failed {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut data: Vec<u8> = bytes.to_vec();
        let mut pos = 0;
        let result = loop {
            match self.phase {
                Phase::Failed => break Ok(()),
                Phase::Head => {
                    self.head.extend_from_slice(&data[pos..]);
                    match parse_request_head(&self.head) {
                        Parsed::Complete {
                            request,
                            head_len,
                            framing,
                        } => {
                            data = self.head.split_off(head_len);
                            pos = 0;
                            self.head.clear();
                            self.consumed += head_len as u64;
                            out.push((request, self.consumed));
                            self.phase = match framing {
                                Framing::None | Framing::Length(0) => Phase::Head,
                                Framing::Length(n) => Phase::Length(n),
                                Framing::Chunked => {
                                    Phase::Chunked(Chunk::Size { digits: 0, size: 0 })
                                }
                            };
                        }
                        Parsed::Incomplete => break Ok(()),
                        Parsed::Invalid(e) => break Err(e),
                    }
                }
                Phase::Length(n) => {
                    if pos == data.len() {
                        break Ok(());
                    }
                    let take = n.min((data.len() - pos) as u64);
                    pos += take as usize;
                    self.consumed += take;
                    self.phase = if take == n {
                        Phase::Head
                    } else {
                        Phase::Length(n - take)
                    };
                }
                Phase::Chunked(state) => {
                    if pos == data.len() {
                        break Ok(());
                    }
                    if let Chunk::Data(n) = state {
                        let take = n.min((data.len() - pos) as u64);
                        pos += take as usize;
                        self.consumed += take;
                        self.phase = Phase::Chunked(if take == n {
                            Chunk::DataCr
                        } else {
                            Chunk::Data(n - take)
                        });
                        continue;
                    }
                    let b = data[pos];
                    pos += 1;
                    self.consumed += 1;
                    match chunk_step(state, b) {
                        Some(Some(next)) => self.phase = Phase::Chunked(next),
                        Some(None) => self.phase = Phase::Head,
                        None => break Err(Invalid::Malformed),
                    }
                }
            }
        };
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.phase = Phase::Failed;
                self.failed = Some(e);
                self.head.clear();
                if out.is_empty() {
                    Err(e)
                } else {
                    self.pending = Some(e);
                    Ok(out)
                }
            }
        }
    }

    /// The invalid input the stream stopped at, once seen (even if not yet returned).
    pub fn invalid(&self) -> Option<Invalid> {
        self.failed
    }

    /// Stream offset up to which bytes are accounted for: past the last complete head or body
    /// byte (bytes of an incomplete head are not counted).
    pub fn offset(&self) -> u64 {
        self.consumed
    }
}

/// One byte of a chunked body: `None` = malformed, `Some(None)` = the body ended.
fn chunk_step(state: Chunk, b: u8) -> Option<Option<Chunk>> {
    let hex = |b: u8| char::from(b).to_digit(16).map(u64::from);
    let next = match state {
        Chunk::Size { digits, size } => {
            if let Some(d) = hex(b) {
                if digits == 8 {
                    return None;
                }
                Chunk::Size {
                    digits: digits + 1,
                    size: size * 16 + d,
                }
            } else if digits == 0 {
                return None;
            } else if b == b';' {
                Chunk::Extension { size }
            } else if b == CR {
                Chunk::SizeLf { size }
            } else {
                return None;
            }
        }
        Chunk::Extension { size } => {
            if b == CR {
                Chunk::SizeLf { size }
            } else if b == b'\t' || (0x20..=0x7e).contains(&b) || b >= 0x80 {
                Chunk::Extension { size }
            } else {
                return None;
            }
        }
        Chunk::SizeLf { size } => {
            if b != LF {
                return None;
            }
            if size == 0 {
                Chunk::TrailerStart
            } else {
                Chunk::Data(size)
            }
        }
        Chunk::Data(1) => Chunk::DataCr,
        Chunk::Data(n) => Chunk::Data(n - 1),
        Chunk::DataCr => {
            if b != CR {
                return None;
            }
            Chunk::DataLf
        }
        Chunk::DataLf => {
            if b != LF {
                return None;
            }
            Chunk::Size { digits: 0, size: 0 }
        }
        Chunk::TrailerStart => {
            if b == CR {
                Chunk::EndLf
            } else if is_tchar(b) {
                Chunk::TrailerName
            } else {
                return None;
            }
        }
        Chunk::TrailerName => {
            if b == b':' {
                Chunk::TrailerValue
            } else if is_tchar(b) {
                Chunk::TrailerName
            } else {
                return None;
            }
        }
        Chunk::TrailerValue => {
            if b == CR {
                Chunk::TrailerLf
            } else if is_value_byte(b) {
                Chunk::TrailerValue
            } else {
                return None;
            }
        }
        Chunk::TrailerLf => {
            if b != LF {
                return None;
            }
            Chunk::TrailerStart
        }
        Chunk::EndLf => {
            if b != LF {
                return None;
            }
            return Some(None);
        }
    };
    Some(Some(next))
}
