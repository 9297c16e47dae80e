//! Random HTTP rule sets and requests for differential tests of the HTTP matcher:
//! `HttpTables::decide` (what the kernel computes) against `HttpRuleSet::matching_rule`.
//!
//! Rules draw from regex templates with anchors, alternations, classes, case-insensitive
//! groups, byte escapes and bounded repetitions, plus header conditions (presence, exact
//! values, `LOG`-only) and host regexes. Requests are mostly built to nearly match one rule and
//! then mutated: letter case, percent-encoding, bytes ≥ 0x80, query strings, long paths, header
//! name case, duplicated and missing headers. A few are not well formed (control bytes, spaces).

use super::rng::Rng;
use crate::compiled::PolicyRef;
use crate::http::{HeaderMatch, HttpMatch, HttpRequest, HttpRuleEntry, HttpRuleSet, build_tables};

const METHOD_REGEXES: &[&str] = &[
    "GET",
    "POST",
    "GET|HEAD",
    "(GET|PUT)",
    "P.*",
    "[A-Z]+",
    "DELETE",
    "get",
    "(?i)get",
    "PATCH|OPTIONS",
    ".*",
    "G?E?T",
];

const PATH_REGEXES: &[&str] = &[
    "/",
    "/public",
    "/api/.*",
    "/api/v[0-9]+/users/?.*",
    "/api/v1/users/[0-9]+",
    r"/a/b\?x=1",
    "/(foo|bar)/baz",
    r".*\.html",
    "/%2[Ff]admin.*",
    "(?i)/admin(/.*)?",
    "/café",
    "/[^/]*",
    "/x/.{0,8}",
    r"/search\?q=[a-z%0-9]*",
    "^/root$",
    r"/(?-u:\xFF)+",
    "/api/v1/orders",
    "/helloworld.Greeter/SayHello",
    "/a.*b.*c",
    "(?m)/m$",
    "/[[:alpha:]]+",
    r"/\w+/\d+",
    r"/\bword\b.*",
    "/api/v1/users/?.*",
    "/(?s:.)*z",
];

const HOST_REGEXES: &[&str] = &[
    r"example\.com",
    r"(.*\.)?example\.com",
    r"api\.local(:[0-9]+)?",
    r"[a-z]+\.svc",
    r"(?i)EXAMPLE\.COM",
];

const HEADER_NAMES: &[&str] = &[
    "X-Request-Source",
    "Content-Type",
    "x-api-key",
    "Authorization",
    "X-A",
    "Host",
    "Accept",
    "X-Empty",
];

const HEADER_VALUES: &[&str] = &[
    "frontend-app",
    "application/json",
    "secret",
    "Bearer abc",
    "v1",
    "",
    "a b",
    "été",
    "a\tb",
];

const METHODS: &[&str] = &[
    "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "get", "Get", "PRI", "M-SEARCH",
    "X", "GET", "GET", "POST",
];

const PATHS: &[&str] = &[
    "/",
    "/public",
    "/public?x=1",
    "/api/",
    "/api/v1/users",
    "/api/v1/users/42",
    "/api/v12/users",
    "/a/b?x=1",
    "/foo/baz",
    "/bar/baz",
    "/index.html",
    "/%2Fadmin/x",
    "/%2fadmin",
    "/ADMIN",
    "/admin/x",
    "/café",
    "/x/12345678",
    "/x/123456789",
    "/search?q=a%20b",
    "/root",
    "/api/v1/orders",
    "/helloworld.Greeter/SayHello",
    "/aXbYc",
    "/m",
    "/word/1",
    "/a_b/99",
    "*",
    "/z",
];

const HOSTS: &[&str] = &[
    "example.com",
    "www.example.com",
    "EXAMPLE.COM",
    "api.local:8080",
    "api.local",
    "x.svc",
    "evil.com",
    "example.com.evil",
];

/// Requests per generated HTTP case.
pub const REQUESTS_PER_CASE: usize = 100;

/// A rule set (1 to 12 rules, within every datapath limit) and `REQUESTS_PER_CASE` requests.
pub fn random_http_case(seed: u64) -> (HttpRuleSet, Vec<HttpRequest>) {
    let mut rng = Rng::new(seed ^ 0x4854_5450);
    let count = if rng.chance(10) {
        rng.range(8, 12)
    } else {
        rng.range(1, 5)
    };
    let policies = [
        PolicyRef {
            kind: "CiliumNetworkPolicy".into(),
            namespace: "default".into(),
            name: "http-a".into(),
        },
        PolicyRef {
            kind: "CiliumClusterwideNetworkPolicy".into(),
            namespace: String::new(),
            name: "http-b".into(),
        },
    ];
    let rules: Vec<HttpRuleEntry> = (0..count)
        .map(|i| HttpRuleEntry {
            policy: rng.pick(&policies).clone(),
            location: format!("spec.ingress[0].toPorts[0].rules.http[{i}]"),
            rule: random_rule(&mut rng),
        })
        .collect();
    let mut set = HttpRuleSet { rules };
    // Some draws of many rules need more DFA states than the datapath has (the agent refuses
    // such a set at load time): the last rules go until the rest fits.
    while set.rules.len() > 1 && build_tables(&set, &[]).is_err() {
        set.rules.pop();
    }
    let requests = (0..REQUESTS_PER_CASE)
        .map(|_| random_request(&mut rng, &set))
        .collect();
    (set, requests)
}

fn random_rule(rng: &mut Rng) -> HttpMatch {
    let pick = |rng: &mut Rng, pool: &[&str], percent| {
        rng.chance(percent).then(|| rng.pick(pool).to_string())
    };
    let method = pick(rng, METHOD_REGEXES, 60);
    let path = pick(rng, PATH_REGEXES, 70);
    let host = pick(rng, HOST_REGEXES, 20);
    let n = if rng.chance(40) { rng.range(1, 3) } else { 0 };
    let headers = (0..n)
        .map(|_| HeaderMatch {
            name: rng.pick(HEADER_NAMES).to_string(),
            value: rng.chance(60).then(|| rng.pick(HEADER_VALUES).to_string()),
            log_only: rng.chance(15),
        })
        .collect();
    HttpMatch {
        method,
        path,
        host,
        headers,
    }
}

fn flip_case(rng: &mut Rng, bytes: &mut [u8]) {
    let letters: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_alphabetic())
        .collect();
    if !letters.is_empty() {
        let i = *rng.pick(&letters);
        bytes[i] ^= 0x20;
    }
}

fn random_target(rng: &mut Rng) -> Vec<u8> {
    let mut t = rng.pick(PATHS).as_bytes().to_vec();
    if t == b"*" {
        return t;
    }
    match rng.below(12) {
        0 => flip_case(rng, &mut t),
        1 => {
            // Percent-encode one byte.
            let i = rng.below(t.len() as u64) as usize;
            if i > 0 {
                let b = t[i];
                let enc = format!("%{b:02X}").into_bytes();
                t.splice(i..=i, enc);
            }
        }
        2 => {
            let tails: [&[u8]; 5] = [b"?a=1", b"?q=%41", b"#frag", b"/", b"//"];
            let tail: &&[u8] = rng.pick(&tails);
            t.extend_from_slice(tail);
        }
        3 => t.push(*rng.pick(&[0x80u8, 0xC3, 0xFF, b'%', b'~', b'z'])),
        4 => {
            // A long path.
            let segments: [&[u8]; 4] = [b"/aaaa", b"/x", b"/%2F", b"/\xC3\xA9"];
            let segment = *rng.pick(&segments);
            // Sometimes around the head limit (8 192 bytes).
            let times = if rng.chance(10) {
                rng.range(1600, 1660)
            } else {
                rng.range(50, 900)
            } as usize;
            for _ in 0..times {
                t.extend_from_slice(segment);
            }
        }
        5 if rng.chance(30) => {
            // Not well formed.
            let i = rng.below(t.len() as u64 + 1) as usize;
            t.insert(i, *rng.pick(&[b' ', b'\n', 0x7f, 0x00, b'\t']));
        }
        _ => {}
    }
    t
}

fn random_value(rng: &mut Rng, want: Option<&str>) -> Vec<u8> {
    let mut v = match want {
        Some(w) if rng.chance(75) => w.as_bytes().to_vec(),
        _ => rng.pick(HEADER_VALUES).as_bytes().to_vec(),
    };
    match rng.below(10) {
        0 => flip_case(rng, &mut v),
        1 => v.push(b'x'),
        2 => v.push(0x80),
        3 if rng.chance(20) => v.insert(0, 0x01),
        4 if rng.chance(20) => {
            // A control byte inside the value.
            let i = rng.below(v.len() as u64 + 1) as usize;
            v.insert(i, *rng.pick(&[0x01u8, 0x0b, 0x7f]));
        }
        _ => {}
    }
    // Values are stored trimmed.
    crate::http::trim_ows(&v).to_vec()
}

fn random_name(rng: &mut Rng, name: &str) -> Vec<u8> {
    let mut n = name.as_bytes().to_vec();
    match rng.below(4) {
        0 => n.make_ascii_lowercase(),
        1 => n.make_ascii_uppercase(),
        2 => flip_case(rng, &mut n),
        _ => {}
    }
    n
}

/// A request aimed at one of the rules of `set` (or at none).
pub(crate) fn random_request(rng: &mut Rng, set: &HttpRuleSet) -> HttpRequest {
    let target_rule = (rng.chance(80) && !set.rules.is_empty()).then(|| {
        set.rules[rng.below(set.rules.len() as u64) as usize]
            .rule
            .clone()
    });
    let mut method = rng.pick(METHODS).as_bytes().to_vec();
    if rng.chance(3) {
        let odd: [&[u8]; 4] = [b"GE T", b"", b"G\x80T", b"GET\r"];
        method = rng.pick(&odd).to_vec();
    }
    let target = random_target(rng);
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if let Some(rule) = &target_rule {
        for h in &rule.headers {
            if rng.chance(85) {
                let name = random_name(rng, &h.name);
                let value = random_value(rng, h.value.as_deref());
                headers.push((name, value));
            }
        }
    }
    if rng.chance(60) {
        let host = rng.pick(HOSTS).as_bytes().to_vec();
        let host = if rng.chance(10) {
            let mut h = host;
            flip_case(rng, &mut h);
            h
        } else {
            host
        };
        let at = rng.below(headers.len() as u64 + 1) as usize;
        headers.insert(at, (random_name(rng, "Host"), host));
    }
    for _ in 0..rng.below(3) {
        let base = *rng.pick(HEADER_NAMES);
        let name = random_name(rng, base);
        let value = random_value(rng, None);
        let at = rng.below(headers.len() as u64 + 1) as usize;
        headers.insert(at, (name, value));
    }
    if rng.chance(3) {
        let odd: [&[u8]; 3] = [b"X Y", b"", b"X:Y"];
        headers.push((rng.pick(&odd).to_vec(), b"v".to_vec()));
    }
    HttpRequest {
        method,
        target,
        version: rng.below(2) as u8,
        headers,
    }
}

/// Serialises a request head (request line, headers, final CRLF). Header values get
/// optional whitespace around them (chosen from the header's contents, so the same request
/// always gives the same bytes), which parsing removes again.
pub fn encode_request(req: &HttpRequest) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&req.method);
    out.push(b' ');
    out.extend_from_slice(&req.target);
    out.extend_from_slice(if req.version == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    for (i, (name, value)) in req.headers.iter().enumerate() {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ i as u64;
        for b in name.iter().chain(value) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let before: &[u8] = [&b""[..], b" ", b"\t", b"  ", b" \t"][(h % 5) as usize];
        let after: &[u8] = [&b""[..], b"", b" ", b"\t "][((h >> 8) % 4) as usize];
        out.extend_from_slice(name);
        out.push(b':');
        out.extend_from_slice(before);
        out.extend_from_slice(value);
        out.extend_from_slice(after);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}
