//! An `HttpRuleSet` as the kernel's tables: four DFAs and the masks that combine their results.
//!
//! - The method and path DFAs report, in bit `i`, whether rule `i`'s regex matches (rules
//!   without one: always).
//! - Header names get *slots*: 0-3 are `Content-Length`, `Transfer-Encoding`, `Host` and
//!   `Upgrade` (the parser needs them), then every other name the rules mention, in rule order
//!   (names compare ASCII-case-insensitively). The name DFA reports the slot of a name.
//! - A header *requirement* is a (slot, value pattern) pair: presence (any value), an exact
//!   value, or a rule's `host` regex (on the `Host` slot). The value DFA reports, in bit `k`,
//!   whether requirement `k`'s pattern matches a trimmed value. Equal requirements of several
//!   rules share one bit.
//! - `slot_reqs[s]`: the requirements on slot `s`; `needs[k]`: the rules that require `k`.
//!   Requirements are numbered from 0 without gaps and each is required by a rule, so the first
//!   `needs[k] == 0` ends them (the datapath stops there).

use super::dfa::{self, DfaError, Pattern};
use super::request::{is_target_byte, is_tchar, is_value_byte};
use super::syntax::check_regex;
use super::{
    BIT_CHUNKED, BIT_CL_VALUE, BIT_WELLFORMED, CAPTURE_SHIFT, Dfa, FIXED_SLOT_NAMES, HttpRequest,
    HttpRuleEntry, HttpRuleSet, MAX_DFA_CLASSES, MAX_DFA_STATES, MAX_FLOW_HEADERS, MAX_HEADER_REQS,
    MAX_NAME_SLOTS, MAX_RULES, SLOT_HOST, trim_ows,
};

/// The tables of one rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTables {
    /// Bit `i` (< rules): rule `i`'s method regex matches (no method: always);
    /// `BIT_WELLFORMED`: `1*tchar`.
    pub method: Dfa,
    /// Bit `i`: rule `i`'s path regex matches (no path: always); `BIT_WELLFORMED`: `*`, or `/`
    /// followed by bytes in `0x21..=0x7E | 0x80..=0xFF`.
    pub path: Dfa,
    /// Bit `s` (< `MAX_NAME_SLOTS`): the name equals slot `s`'s name (ASCII
    /// case-insensitively); `BIT_WELLFORMED`: `1*tchar`; bits `CAPTURE_SHIFT..+4`: 1 + the
    /// index of the flow header the name equals (0: none).
    pub name: Dfa,
    /// Whether the name DFA reports the flow headers: false when none were asked for, or when
    /// they did not fit the DFA limits next to the rules' names.
    pub flow_headers: bool,
    /// Bit `k` (< requirements): requirement `k`'s pattern matches the trimmed value;
    /// `BIT_CL_VALUE`, `BIT_CHUNKED`; `BIT_WELLFORMED`: no byte in `0x00..=0x08 | 0x0A..=0x1F
    /// | 0x7F`.
    pub value: Dfa,
    /// `(1 << rules) - 1`.
    pub rule_bits: u64,
    /// `slot_reqs[s]`: the requirements whose header name is slot `s`.
    pub slot_reqs: [u64; 32],
    /// `needs[k]`: the rules that require requirement `k`.
    pub needs: [u64; 48],
}

impl HttpTables {
    /// What the kernel computes from these tables; equals `HttpRuleSet::matching_rule` on every
    /// well-formed request (and is `None` on the others).
    pub fn decide(&self, req: &HttpRequest) -> Option<usize> {
        let m = self.method.run(&req.method);
        let p = self.path.run(&req.target);
        if m & p & BIT_WELLFORMED == 0 {
            return None;
        }
        let mut seen = 0u64;
        for (name, value) in &req.headers {
            let n = self.name.run(name);
            let v = self.value.run(trim_ows(value));
            if n & v & BIT_WELLFORMED == 0 {
                return None;
            }
            for (s, reqs) in self.slot_reqs.iter().enumerate() {
                if n & (1 << s) != 0 {
                    seen |= reqs & v;
                }
            }
        }
        let mut failed = 0u64;
        for (k, rules) in self.needs.iter().enumerate() {
            if seen & (1 << k) == 0 {
                failed |= rules;
            }
        }
        let allowed = m & p & self.rule_bits & !failed;
        (allowed != 0).then(|| allowed.trailing_zeros() as usize)
    }
}

/// A rule set that does not fit the datapath, naming the rule that does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct TableError {
    /// `Kind namespace/name field.path` of the rule.
    pub location: String,
    pub message: String,
}

fn rule_location(entry: &HttpRuleEntry) -> String {
    let p = &entry.policy;
    if p.namespace.is_empty() {
        format!("{} {} {}", p.kind, p.name, entry.location)
    } else {
        format!("{} {}/{} {}", p.kind, p.namespace, p.name, entry.location)
    }
}

/// A header value pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ValuePattern {
    Presence,
    Exact(String),
    Regex(String),
}

/// Slots and requirements of the first rules of a set.
struct Layout {
    /// Lower-case names by slot.
    slots: Vec<String>,
    /// (slot, pattern) by requirement.
    reqs: Vec<(usize, ValuePattern)>,
    /// Rules (bits) by requirement.
    needs: Vec<u64>,
    /// The rule that introduced each slot and requirement.
    slot_rule: Vec<usize>,
    req_rule: Vec<usize>,
}

fn layout(set: &HttpRuleSet) -> Layout {
    let mut l = Layout {
        slots: FIXED_SLOT_NAMES.iter().map(|s| s.to_string()).collect(),
        reqs: Vec::new(),
        needs: Vec::new(),
        slot_rule: vec![0; FIXED_SLOT_NAMES.len()],
        req_rule: Vec::new(),
    };
    for (i, entry) in set.rules.iter().enumerate() {
        let rule = &entry.rule;
        let mut wanted: Vec<(usize, ValuePattern)> = Vec::new();
        if let Some(host) = &rule.host {
            wanted.push((SLOT_HOST, ValuePattern::Regex(host.clone())));
        }
        for h in rule.headers.iter().filter(|h| !h.log_only) {
            let lower = h.name.to_ascii_lowercase();
            let slot = match l.slots.iter().position(|s| *s == lower) {
                Some(s) => s,
                None => {
                    l.slots.push(lower);
                    l.slot_rule.push(i);
                    l.slots.len() - 1
                }
            };
            let pattern = match &h.value {
                None => ValuePattern::Presence,
                Some(v) => ValuePattern::Exact(v.clone()),
            };
            wanted.push((slot, pattern));
        }
        for want in wanted {
            let k = match l.reqs.iter().position(|r| *r == want) {
                Some(k) => k,
                None => {
                    l.reqs.push(want);
                    l.needs.push(0);
                    l.req_rule.push(i);
                    l.reqs.len() - 1
                }
            };
            l.needs[k] |= 1 << i.min(63);
        }
    }
    l
}

/// A regex class of the bytes `pred` accepts (Unicode off).
fn byte_class(pred: impl Fn(u8) -> bool) -> String {
    let mut out = String::from("(?-u:[");
    let mut b = 0usize;
    while b < 256 {
        if !pred(b as u8) {
            b += 1;
            continue;
        }
        let first = b;
        while b + 1 < 256 && pred((b + 1) as u8) {
            b += 1;
        }
        if first == b {
            out.push_str(&format!("\\x{first:02X}"));
        } else {
            out.push_str(&format!("\\x{first:02X}-\\x{b:02X}"));
        }
        b += 1;
    }
    out.push_str("])");
    out
}

const WELLFORMED_BIT: u32 = 63;

fn wellformed(regex: String) -> Pattern {
    Pattern {
        regex,
        bit: WELLFORMED_BIT,
    }
}

/// Which DFA, for messages.
#[derive(Clone, Copy)]
enum Field {
    Method,
    Path,
    Name,
    Value,
}

impl Field {
    fn what(self) -> &'static str {
        match self {
            Field::Method => "method regexes",
            Field::Path => "path regexes",
            Field::Name => "header names",
            Field::Value => "header values and host regexes",
        }
    }
}

/// The patterns of one DFA for the first `upto` rules, and the bits set in every state.
fn patterns(set: &HttpRuleSet, field: Field, upto: usize) -> (Vec<Pattern>, u64) {
    let rules = &set.rules[..upto];
    let l = layout(&HttpRuleSet {
        rules: rules.to_vec(),
    });
    let mut out = Vec::new();
    let mut always = 0u64;
    match field {
        Field::Method | Field::Path => {
            for (i, entry) in rules.iter().enumerate() {
                let re = match field {
                    Field::Method => &entry.rule.method,
                    _ => &entry.rule.path,
                };
                match re {
                    Some(re) => out.push(Pattern {
                        regex: re.clone(),
                        bit: i as u32,
                    }),
                    None => always |= 1 << i,
                }
            }
            out.push(wellformed(match field {
                Field::Method => format!("{}+", byte_class(is_tchar)),
                _ => format!(r"\*|/{}*", byte_class(is_target_byte)),
            }));
        }
        Field::Name => {
            for (s, name) in l.slots.iter().enumerate() {
                out.push(Pattern {
                    regex: format!("(?i){}", regex::escape(name)),
                    bit: s as u32,
                });
            }
            out.push(wellformed(format!("{}+", byte_class(is_tchar))));
        }
        Field::Value => {
            for (k, (_, pattern)) in l.reqs.iter().enumerate() {
                match pattern {
                    ValuePattern::Presence => always |= 1 << k,
                    ValuePattern::Exact(v) => out.push(Pattern {
                        regex: regex::escape(v),
                        bit: k as u32,
                    }),
                    ValuePattern::Regex(re) => out.push(Pattern {
                        regex: re.clone(),
                        bit: k as u32,
                    }),
                }
            }
            out.push(Pattern {
                regex: "[0-9]+".into(),
                bit: BIT_CL_VALUE.trailing_zeros(),
            });
            out.push(Pattern {
                regex: "(?i)chunked".into(),
                bit: BIT_CHUNKED.trailing_zeros(),
            });
            out.push(wellformed(format!("{}*", byte_class(is_value_byte))));
        }
    }
    (out, always)
}

fn limit_message(field: Field, e: &DfaError) -> String {
    let what = field.what();
    match e {
        DfaError::States(Some(n)) => format!(
            "the HTTP rules of this port up to this one need {n} DFA states for their {what}; \
             the datapath allows {MAX_DFA_STATES}"
        ),
        DfaError::States(None) => format!(
            "the HTTP rules of this port up to this one need more than {MAX_DFA_STATES} DFA \
             states for their {what}; the datapath allows {MAX_DFA_STATES}"
        ),
        DfaError::Classes(n) => format!(
            "the HTTP rules of this port up to this one need {n} byte classes for their {what}; \
             the datapath allows {MAX_DFA_CLASSES}"
        ),
    }
}

/// Builds one DFA; on failure names the first rule whose addition makes it too big.
fn field_dfa(set: &HttpRuleSet, field: Field) -> Result<Dfa, TableError> {
    let n = set.rules.len();
    let (pats, always) = patterns(set, field, n);
    match dfa::build(&pats, always) {
        Ok(d) => Ok(d),
        Err(full) => {
            for upto in 1..=n {
                let (pats, always) = patterns(set, field, upto);
                if let Err(e) = dfa::build(&pats, always) {
                    return Err(TableError {
                        location: rule_location(&set.rules[upto - 1]),
                        message: limit_message(field, &e),
                    });
                }
            }
            Err(TableError {
                location: set
                    .rules
                    .first()
                    .map(rule_location)
                    .unwrap_or_else(|| "HTTP rules".into()),
                message: limit_message(field, &full),
            })
        }
    }
}

/// The name DFA with the flow headers' indices added, if it still fits.
fn name_dfa_with_flow_headers(set: &HttpRuleSet, flow_headers: &[String]) -> Option<Dfa> {
    let (mut pats, always) = patterns(set, Field::Name, set.rules.len());
    for (i, name) in flow_headers.iter().enumerate() {
        let code = i + 1;
        for b in 0..4 {
            if code >> b & 1 == 1 {
                pats.push(Pattern {
                    regex: format!("(?i){}", regex::escape(name)),
                    bit: CAPTURE_SHIFT + b,
                });
            }
        }
    }
    dfa::build(&pats, always).ok()
}

/// Builds the tables; errors name the rule that does not fit and the limit. The values of
/// `flow_headers` (header names, at most `MAX_FLOW_HEADERS`) are captured for request flows
/// when they fit (`HttpTables::flow_headers`).
pub fn build_tables(set: &HttpRuleSet, flow_headers: &[String]) -> Result<HttpTables, TableError> {
    assert!(
        flow_headers.len() <= MAX_FLOW_HEADERS,
        "at most {MAX_FLOW_HEADERS} flow headers"
    );
    if let Some(entry) = set.rules.get(MAX_RULES) {
        return Err(TableError {
            location: rule_location(entry),
            message: format!(
                "the HTTP rules of this port number {}; the datapath allows {MAX_RULES} per port",
                set.rules.len()
            ),
        });
    }
    for entry in &set.rules {
        let fields = [
            ("method", &entry.rule.method),
            ("path", &entry.rule.path),
            ("host", &entry.rule.host),
        ];
        for (field, re) in fields {
            if let Some(re) = re
                && let Err(message) = check_regex(re)
            {
                return Err(TableError {
                    location: format!("{}.{field}", rule_location(entry)),
                    message,
                });
            }
        }
    }
    let l = layout(set);
    if l.slots.len() > MAX_NAME_SLOTS {
        return Err(TableError {
            location: rule_location(&set.rules[l.slot_rule[MAX_NAME_SLOTS]]),
            message: format!(
                "the HTTP rules of this port name {} distinct headers (with Content-Length, \
                 Transfer-Encoding, Host and Upgrade); the datapath allows {MAX_NAME_SLOTS}",
                l.slots.len()
            ),
        });
    }
    if l.reqs.len() > MAX_HEADER_REQS {
        return Err(TableError {
            location: rule_location(&set.rules[l.req_rule[MAX_HEADER_REQS]]),
            message: format!(
                "the HTTP rules of this port have {} distinct header conditions (host regexes \
                 included); the datapath allows {MAX_HEADER_REQS}",
                l.reqs.len()
            ),
        });
    }
    let mut slot_reqs = [0u64; 32];
    for (k, (slot, _)) in l.reqs.iter().enumerate() {
        slot_reqs[*slot] |= 1 << k;
    }
    let mut needs = [0u64; 48];
    needs[..l.needs.len()].copy_from_slice(&l.needs);
    let n = set.rules.len();
    let mut name = field_dfa(set, Field::Name)?;
    let mut captures = false;
    if !flow_headers.is_empty()
        && let Some(with) = name_dfa_with_flow_headers(set, flow_headers)
    {
        name = with;
        captures = true;
    }
    Ok(HttpTables {
        method: field_dfa(set, Field::Method)?,
        path: field_dfa(set, Field::Path)?,
        name,
        flow_headers: captures,
        value: field_dfa(set, Field::Value)?,
        rule_bits: if n == 64 { u64::MAX } else { (1u64 << n) - 1 },
        slot_reqs,
        needs,
    })
}
