//! HTTP/1.x rules (`rules.http`) as the datapath enforces them.
//!
//! - [`HttpRuleSet`]: the merged HTTP rules of one (endpoint, direction, remote identity, port)
//!   entry (`PolicyEntry::l7_rules`), with the reference matcher [`HttpRuleSet::matching_rule`].
//! - [`parse_request_head`] and [`RequestStream`]: the request grammar the kernel implements
//!   (request line, header lines, framing, chunked bodies, pipelining).
//! - [`build_tables`]: the rule set as [`HttpTables`], byte-class DFAs plus bit masks that the
//!   kernel runs over the method, the request-target and every header line
//!   ([`HttpTables::decide`] is that computation in Rust and equals the reference matcher on
//!   every well-formed request).
//!
//! Semantics (Cilium's, made exact): a rule matches when all its present fields match, a request
//! is allowed when any rule matches. `method`, `path` and `host` are byte regexes with Unicode
//! disabled (`.` is any byte but `\n`, classes are ASCII) that must match the whole value:
//! `method` the method token, `path` the raw request-target (query included, no decoding, no
//! normalisation), `host` the value of a `Host` header (no `Host` header: no match). `headers`
//! entries `Name` require a header of that name, `Name: value` one whose value is exactly
//! `value`; `headerMatches` `{name, value}` likewise, and with `mismatch: LOG` they do not gate
//! the rule. Header names compare ASCII-case-insensitively; header values are compared after
//! removing leading and trailing whitespace (SP and HT).

mod dfa;
mod request;
mod syntax;
mod tables;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::compiled::PolicyRef;

pub use dfa::Dfa;
pub use request::{Framing, HttpRequest, Invalid, Parsed, RequestStream, parse_request_head};
pub(crate) use syntax::check_regex;
pub use tables::{HttpTables, TableError, build_tables};

/// Rules per set; the method and path DFAs report rule `i` in bit `i`.
pub const MAX_RULES: usize = 48;
/// Distinct header requirements per set; the value DFA reports requirement `k` in bit `k`.
pub const MAX_HEADER_REQS: usize = 48;
/// Distinct header names per set (the four fixed slots included); name-DFA bits 0..31.
pub const MAX_NAME_SLOTS: usize = 32;
/// States per DFA (state numbers are bytes).
pub const MAX_DFA_STATES: usize = 256;
/// Byte classes per DFA (the width of a transition-table row).
pub const MAX_DFA_CLASSES: usize = 64;
/// Longest request head: request line, header lines and the final CRLF.
pub const MAX_HEAD_LEN: usize = 8192;
/// Every DFA: the input is well formed for its field.
pub const BIT_WELLFORMED: u64 = 1 << 63;
/// Value DFA: the (trimmed) value is `1*DIGIT`.
pub const BIT_CL_VALUE: u64 = 1 << 62;
/// Value DFA: the (trimmed) value is `chunked`, ASCII case-insensitively.
pub const BIT_CHUNKED: u64 = 1 << 61;
/// Name DFA: bits `CAPTURE_SHIFT..CAPTURE_SHIFT + 4` hold 1 + the index of the flow header
/// (`build_tables`'s `flow_headers`) the name equals, 0 for other names.
pub const CAPTURE_SHIFT: u32 = 56;
/// Header names whose values request flows can carry (the index must fit four bits, and the
/// datapath's marks `0x10 + index` must stay below its end mark `0x1f`).
pub const MAX_FLOW_HEADERS: usize = 15;
/// Fixed name slots; user-named headers get slots 4.. (a name equal to a fixed one, ASCII
/// case-insensitively, shares its slot).
pub const SLOT_CONTENT_LENGTH: usize = 0;
pub const SLOT_TRANSFER_ENCODING: usize = 1;
pub const SLOT_HOST: usize = 2;
pub const SLOT_UPGRADE: usize = 3;

/// The names of the fixed slots, in slot order.
pub const FIXED_SLOT_NAMES: [&str; 4] = ["content-length", "transfer-encoding", "host", "upgrade"];

/// One header condition of a rule (`headers` entry or `headerMatches` entry).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HeaderMatch {
    /// Compared ASCII-case-insensitively.
    pub name: String,
    /// `None`: the header must be present; `Some(v)`: a header of that name whose trimmed value
    /// is exactly `v` (case-sensitive).
    pub value: Option<String>,
    /// `headerMatches` with `mismatch: LOG`: reported, but the rule matches whatever the header.
    pub log_only: bool,
}

/// One HTTP rule: every present field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HttpMatch {
    /// Regex over the method token.
    pub method: Option<String>,
    /// Regex over the raw request-target.
    pub path: Option<String>,
    /// Regex over the value of the `Host` header.
    pub host: Option<String>,
    pub headers: Vec<HeaderMatch>,
}

/// A rule with the policy and the field path it comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HttpRuleEntry {
    pub policy: PolicyRef,
    /// e.g. `spec.ingress[0].toPorts[0].rules.http[1]`.
    pub location: String,
    pub rule: HttpMatch,
}

/// The HTTP rules of one policy entry: a request is allowed when any rule matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HttpRuleSet {
    pub rules: Vec<HttpRuleEntry>,
}

impl HttpRuleSet {
    /// The set of `entries` in the compiler's order: by policy, then by location (numbers in
    /// the path compared as numbers), duplicates removed. Equal inputs give equal sets whatever
    /// their order.
    pub fn merged(entries: impl IntoIterator<Item = HttpRuleEntry>) -> HttpRuleSet {
        let mut rules: Vec<HttpRuleEntry> = entries.into_iter().collect();
        rules.sort_by(|a, b| {
            (&a.policy, location_key(&a.location), &a.rule).cmp(&(
                &b.policy,
                location_key(&b.location),
                &b.rule,
            ))
        });
        rules.dedup();
        HttpRuleSet { rules }
    }

    /// Whether these rules are gRPC rules, which the agent's proxy enforces instead of the
    /// kernel's HTTP/1.x parser (gRPC runs over HTTP/2, whose HPACK state the datapath does not
    /// keep): the set has rules and every rule has a `path` of the form `/package.Service/...`.
    /// The service part is dot-separated identifiers (each an ASCII letter or `_`, then letters,
    /// digits or `_`; dots may be written `\.`), at least two of them, the last (the service
    /// name) starting with an upper-case letter as protobuf service names do, followed by `/`;
    /// what follows is free (a method name or a regex).
    /// `/com.example.catalog.ProductService/GetProduct` and `/grpc.health.v1.Health/.*` are
    /// gRPC paths; `/api/v1/users`, `/v1.0/users` and `/index.html/x` are not.
    pub fn is_grpc(&self) -> bool {
        !self.rules.is_empty()
            && self
                .rules
                .iter()
                .all(|r| r.rule.path.as_deref().is_some_and(is_grpc_path))
    }

    /// Reference matcher: the index of the lowest-numbered rule matching `req`, or `None`.
    /// Independent of the DFAs: every regex is `regex::bytes` over `^(?:re)$` with Unicode off.
    pub fn matching_rule(&self, req: &HttpRequest) -> Option<usize> {
        self.rules
            .iter()
            .position(|entry| rule_matches(&entry.rule, req))
    }
}

/// `/a.b.C/...`: see [`HttpRuleSet::is_grpc`].
pub fn is_grpc_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let Some((service, _method)) = rest.split_once('/') else {
        return false;
    };
    let service = service.replace("\\.", ".");
    let parts: Vec<&str> = service.split('.').collect();
    parts.len() >= 2
        && parts
            .last()
            .is_some_and(|p| p.starts_with(|c: char| c.is_ascii_uppercase()))
        && parts.iter().all(|p| {
            let mut bytes = p.bytes();
            bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// A location path as (text, number) chunks, so `http[10]` sorts after `http[9]`.
fn location_key(location: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut number: Option<u64> = None;
    for c in location.chars() {
        if let Some(d) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .saturating_mul(10)
                    .saturating_add(u64::from(d)),
            );
        } else {
            if let Some(n) = number.take() {
                out.push((std::mem::take(&mut text), n));
            }
            text.push(c);
        }
    }
    out.push((text, number.unwrap_or(0)));
    out
}

/// Removes leading and trailing optional whitespace (SP, HT).
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

fn rule_matches(rule: &HttpMatch, req: &HttpRequest) -> bool {
    let field = |re: &Option<String>, value: &[u8]| {
        re.as_deref()
            .is_none_or(|re| syntax::reference_match(re, value))
    };
    if !field(&rule.method, &req.method) || !field(&rule.path, &req.target) {
        return false;
    }
    fn header_values<'a>(
        req: &'a HttpRequest,
        name: &'a str,
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        req.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| trim_ows(v))
    }
    if let Some(host) = &rule.host
        && !header_values(req, "host").any(|v| syntax::reference_match(host, v))
    {
        return false;
    }
    rule.headers.iter().filter(|h| !h.log_only).all(|h| {
        let mut values = header_values(req, &h.name);
        match &h.value {
            None => values.next().is_some(),
            Some(want) => values.any(|v| v == want.as_bytes()),
        }
    })
}
