//! Properties of the HTTP/1.x request parser over the bytes of one connection, checked by the
//! fuzz target `request_stream` (`policy/fuzz`) and by the stable test
//! `policy/tests/http_stream_props.rs`.
//!
//! An input is `[k] [cut_1 .. cut_k] stream`: the first byte modulo 8 is a count `k`, then `k`
//! little-endian `u16` cut points (each taken modulo `stream.len() + 1`, sorted; equal cuts
//! give empty pieces), then the stream. A short input has as many cuts as it has bytes for.
//! [`check_request_stream`] panics when one of these breaks:
//!
//! 1. Neither `parse_request_head` nor `RequestStream::feed` panics.
//! 2. `RequestStream` keeps its contract: the error is returned once, no request comes after
//!    it, `invalid()` is that error once it is returned, later calls return nothing; offsets
//!    increase and never pass the bytes fed so far.
//! 3. Split independence: the stream fed in the chosen pieces gives the same requests with the
//!    same offsets, the same first error and the same final `offset()` as fed whole (both
//!    followed by an empty feed, which returns an error found after requests in the last feed).
//! 4. The stream agrees with `parse_request_head` on the whole input: a complete head is its
//!    first request (and its only one when the input is exactly that head), an invalid head is
//!    its error with no request, an incomplete one gives neither. `parse_request_head` on a
//!    prefix (at each cut) is `Incomplete` or the whole input's result, and the whole input's
//!    result once the prefix holds the complete head or [`MAX_HEAD_LEN`] bytes.
//! 5. Every request returned is `is_well_formed()` and parses back from `encode_request` (when
//!    that fits in [`MAX_HEAD_LEN`]) to itself.
//! 6. On every request, the kernel's computation `HttpTables::decide` equals the reference
//!    matcher `HttpRuleSet::matching_rule`, for a fixed hand-written rule set (method, path,
//!    host, exact and present headers, a `LOG`-only header, the fixed header slots) and the
//!    rule sets of a few `random_http_case` seeds.

use std::sync::OnceLock;

use super::{encode_request, random_http_case};
use crate::compiled::PolicyRef;
use crate::http::{
    HeaderMatch, HttpMatch, HttpRequest, HttpRuleEntry, HttpRuleSet, HttpTables, Invalid,
    MAX_HEAD_LEN, Parsed, RequestStream, build_tables, parse_request_head,
};

/// The most cut points an input can choose.
pub const MAX_CUTS: usize = 7;

/// The input of [`check_request_stream`] that cuts `stream` at `cuts` (at most [`MAX_CUTS`],
/// each at most `stream.len()`).
pub fn request_stream_input(cuts: &[u16], stream: &[u8]) -> Vec<u8> {
    assert!(cuts.len() <= MAX_CUTS, "{} cuts", cuts.len());
    let mut out = vec![cuts.len() as u8];
    for cut in cuts {
        assert!(
            usize::from(*cut) <= stream.len(),
            "cut {cut} past the stream"
        );
        out.extend_from_slice(&cut.to_le_bytes());
    }
    out.extend_from_slice(stream);
    out
}

/// The sorted cut points and the stream of an input.
fn split_input(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let k = usize::from(first % 8).min(rest.len() / 2);
    let (cuts, stream) = rest.split_at(2 * k);
    let mut cuts: Vec<usize> = cuts
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    (cuts, stream)
}

/// Everything a stream returned, flattened.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    requests: Vec<(HttpRequest, u64)>,
    error: Option<Invalid>,
    /// `offset()` at the end.
    offset: u64,
}

/// Feeds `pieces` then an empty feed, checking the stream's contract on the way.
fn run_stream(pieces: &[&[u8]]) -> Outcome {
    let mut s = RequestStream::new();
    let mut requests: Vec<(HttpRequest, u64)> = Vec::new();
    let mut error = None;
    let mut fed = 0u64;
    for (i, piece) in pieces.iter().copied().chain([&b""[..]]).enumerate() {
        fed += piece.len() as u64;
        match s.feed(piece) {
            Ok(out) => {
                assert!(
                    error.is_none() || out.is_empty(),
                    "feed {i} returned {} requests after the error {error:?}",
                    out.len()
                );
                for (request, offset) in out {
                    let last = requests.last().map_or(0, |(_, o)| *o);
                    assert!(
                        last < offset && offset <= fed,
                        "feed {i}: offset {offset} after {last}, {fed} bytes fed"
                    );
                    requests.push((request, offset));
                }
            }
            Err(e) => {
                assert!(
                    error.is_none(),
                    "feed {i} returned {e:?} after {error:?}: the error is returned once"
                );
                error = Some(e);
            }
        }
    }
    assert_eq!(
        s.invalid(),
        error,
        "invalid() once every error has been returned"
    );
    if error.is_some() {
        assert_eq!(
            s.feed(b"GET / HTTP/1.1\r\n\r\n"),
            Ok(Vec::new()),
            "a call after the error"
        );
    }
    let offset = s.offset();
    let last = requests.last().map_or(0, |(_, o)| *o);
    assert!(
        last <= offset && offset <= fed,
        "offset() {offset}: last request at {last}, {fed} bytes fed"
    );
    Outcome {
        requests,
        error,
        offset,
    }
}

fn entry(i: usize, rule: HttpMatch) -> HttpRuleEntry {
    HttpRuleEntry {
        policy: PolicyRef {
            kind: "CiliumNetworkPolicy".into(),
            namespace: "default".into(),
            name: "fuzz".into(),
        },
        location: format!("spec.ingress[0].toPorts[0].rules.http[{i}]"),
        rule,
    }
}

fn header(name: &str, value: Option<&str>, log_only: bool) -> HeaderMatch {
    HeaderMatch {
        name: name.into(),
        value: value.map(str::to_string),
        log_only,
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

/// Rules over every field the tables handle.
fn hand_written_rules() -> HttpRuleSet {
    let rules = vec![
        HttpMatch {
            method: some("GET|HEAD"),
            path: some("/api/v[0-9]+/users(/[0-9]+)?"),
            host: some(r"(.*\.)?example\.com"),
            headers: vec![],
        },
        HttpMatch {
            method: some("POST|PUT"),
            path: some("/upload/.*"),
            host: None,
            headers: vec![
                header("Content-Type", Some("application/json"), false),
                header("X-Api-Key", None, false),
                header("X-Trace", Some("1"), true),
            ],
        },
        HttpMatch {
            method: some("(?i)delete"),
            path: None,
            host: some(r"api\.local(:[0-9]+)?"),
            headers: vec![header("Authorization", Some("Bearer t0k3n"), false)],
        },
        HttpMatch {
            method: some("POST"),
            path: some(r"/chunks\?.*"),
            host: None,
            headers: vec![
                header("transfer-encoding", Some("chunked"), false),
                header("Host", None, false),
            ],
        },
        HttpMatch {
            method: some("PATCH"),
            path: some("/(?-u:[\\x80-\\xFF])+"),
            host: None,
            headers: vec![header("content-length", Some("0"), false)],
        },
        HttpMatch {
            method: some("OPTIONS"),
            path: some(r"\*"),
            host: None,
            headers: vec![header("X-Empty", Some(""), false)],
        },
        HttpMatch {
            method: None,
            path: some("/public(/.*)?"),
            host: None,
            headers: vec![header("Accept", None, false)],
        },
    ];
    HttpRuleSet {
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| entry(i, r))
            .collect(),
    }
}

/// `random_http_case` seeds whose rule sets are checked too (among them sets of 8 to 12
/// rules).
const RULE_SEEDS: [u64; 5] = [1, 2, 16, 20, 28];

/// The rule sets and their tables, built once.
fn rule_sets() -> &'static [(HttpRuleSet, HttpTables)] {
    static SETS: OnceLock<Vec<(HttpRuleSet, HttpTables)>> = OnceLock::new();
    SETS.get_or_init(|| {
        std::iter::once(hand_written_rules())
            .chain(RULE_SEEDS.iter().map(|&seed| random_http_case(seed).0))
            .map(|set| {
                let tables = build_tables(&set, &[]).unwrap_or_else(|e| panic!("{e}: {set:#?}"));
                (set, tables)
            })
            .collect()
    })
}

/// Checks every property of the module documentation on one input; panics on the first that
/// breaks.
pub fn check_request_stream(data: &[u8]) {
    let (cuts, stream) = split_input(data);
    let shown = || {
        format!(
            "stream {:?}, cuts {cuts:?}",
            String::from_utf8_lossy(stream)
        )
    };

    // The first head, and its prefixes.
    let head = parse_request_head(stream);
    for &cut in &cuts {
        let prefix = parse_request_head(&stream[..cut]);
        let settled = cut >= MAX_HEAD_LEN
            || matches!(head, Parsed::Complete { head_len, .. } if head_len <= cut);
        assert!(
            prefix == head || (!settled && prefix == Parsed::Incomplete),
            "parse_request_head: {prefix:?} for the first {cut} bytes, {head:?} for all; {}",
            shown()
        );
    }

    // Split independence.
    let whole = run_stream(&[stream]);
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for &cut in &cuts {
        pieces.push(&stream[start..cut]);
        start = cut;
    }
    pieces.push(&stream[start..]);
    let split = run_stream(&pieces);
    assert_eq!(
        split,
        whole,
        "in pieces (left) and whole (right); {}",
        shown()
    );

    // The stream's first head is `parse_request_head`'s.
    match &head {
        Parsed::Complete {
            request, head_len, ..
        } => {
            assert_eq!(
                whole.requests.first(),
                Some(&(request.clone(), *head_len as u64)),
                "first request; {}",
                shown()
            );
            if *head_len == stream.len() {
                assert_eq!(
                    (whole.requests.len(), whole.error),
                    (1, None),
                    "exactly one head; {}",
                    shown()
                );
            }
        }
        Parsed::Invalid(e) => assert_eq!(
            (whole.requests.len(), whole.error),
            (0, Some(*e)),
            "an invalid first head; {}",
            shown()
        ),
        Parsed::Incomplete => assert_eq!(
            (whole.requests.len(), whole.error),
            (0, None),
            "an incomplete first head; {}",
            shown()
        ),
    }

    // Each request.
    for (request, offset) in &whole.requests {
        assert!(
            request.is_well_formed(),
            "request at {offset} is not well formed: {request:?}; {}",
            shown()
        );
        let encoded = encode_request(request);
        if encoded.len() <= MAX_HEAD_LEN {
            match parse_request_head(&encoded) {
                Parsed::Complete {
                    request: again,
                    head_len,
                    ..
                } if again == *request && head_len == encoded.len() => {}
                other => panic!(
                    "request at {offset} encoded as {:?} parses as {other:?}; {}",
                    String::from_utf8_lossy(&encoded),
                    shown()
                ),
            }
        }
        for (i, (set, tables)) in rule_sets().iter().enumerate() {
            assert_eq!(
                tables.decide(request),
                set.matching_rule(request),
                "rule set {i}: tables (left) and reference (right) on the request at {offset} \
                 {request:?}; rules {:#?}; {}",
                set.rules,
                shown()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_round_trip_their_cuts() {
        let stream = b"GET / HTTP/1.1\r\n\r\n";
        let data = request_stream_input(&[18, 3, 0], stream);
        assert_eq!(split_input(&data), (vec![0, 3, 18], &stream[..]));
        // Cuts wrap; missing cut bytes shorten the list.
        assert_eq!(split_input(&[1, 5, 0, b'a', b'b']), (vec![2], &b"ab"[..]));
        assert_eq!(split_input(&[7, 1]), (vec![], &b"\x01"[..]));
        assert_eq!(split_input(&[]), (vec![], &b""[..]));
    }

    #[test]
    fn the_rule_sets_build() {
        assert_eq!(rule_sets().len(), 1 + RULE_SEEDS.len());
    }
}
