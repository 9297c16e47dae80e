use super::dfa::{Pattern, build};
use super::*;
use crate::testgen::{Rng, encode_request, random_http_case};

fn policy() -> PolicyRef {
    PolicyRef {
        kind: "CiliumNetworkPolicy".into(),
        namespace: "default".into(),
        name: "web".into(),
    }
}

fn set(rules: Vec<HttpMatch>) -> HttpRuleSet {
    HttpRuleSet {
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| HttpRuleEntry {
                policy: policy(),
                location: format!("spec.ingress[0].toPorts[0].rules.http[{i}]"),
                rule,
            })
            .collect(),
    }
}

fn request(method: &str, target: &[u8], headers: &[(&str, &[u8])]) -> HttpRequest {
    HttpRequest {
        method: method.as_bytes().to_vec(),
        target: target.to_vec(),
        version: 1,
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.to_vec()))
            .collect(),
    }
}

fn header(name: &str, value: Option<&str>) -> HeaderMatch {
    HeaderMatch {
        name: name.into(),
        value: value.map(str::to_string),
        log_only: false,
    }
}

/// Both matchers, which must agree.
fn decide(set: &HttpRuleSet, req: &HttpRequest) -> Option<usize> {
    let tables = build_tables(set, &[]).unwrap();
    let reference = set.matching_rule(req);
    assert_eq!(tables.decide(req), reference, "{req:?} against {set:?}");
    reference
}

// ---- Matching semantics ----

#[test]
fn fields_match_the_whole_value() {
    let s = set(vec![HttpMatch {
        method: Some("GET".into()),
        path: Some("/api/.*".into()),
        ..Default::default()
    }]);
    assert_eq!(decide(&s, &request("GET", b"/api/x?y=1", &[])), Some(0));
    assert_eq!(decide(&s, &request("GET", b"/api/", &[])), Some(0));
    assert_eq!(decide(&s, &request("GETS", b"/api/x", &[])), None);
    assert_eq!(decide(&s, &request("get", b"/api/x", &[])), None);
    assert_eq!(decide(&s, &request("GET", b"/v1/api/x", &[])), None);
    assert_eq!(decide(&s, &request("GET", b"/api", &[])), None);
    // No percent-decoding, no normalisation.
    assert_eq!(decide(&s, &request("GET", b"/%61pi/x", &[])), None);
    assert_eq!(decide(&s, &request("GET", b"/api/../secret", &[])), Some(0));
}

#[test]
fn regexes_are_bytes_without_unicode() {
    let s = set(vec![
        HttpMatch {
            path: Some("/caf.".into()),
            ..Default::default()
        },
        HttpMatch {
            path: Some("/é".into()),
            ..Default::default()
        },
        HttpMatch {
            path: Some(r"/(?-u:\xFF)\w".into()),
            ..Default::default()
        },
        HttpMatch {
            path: Some("(?i)/ADMIN".into()),
            ..Default::default()
        },
    ]);
    // `.` is one byte: `é` is two.
    assert_eq!(decide(&s, &request("GET", b"/caf\xC3\xA9", &[])), None);
    assert_eq!(decide(&s, &request("GET", b"/cafe", &[])), Some(0));
    assert_eq!(decide(&s, &request("GET", b"/caf\xFF", &[])), Some(0));
    assert_eq!(decide(&s, &request("GET", "/é".as_bytes(), &[])), Some(1));
    assert_eq!(decide(&s, &request("GET", b"/\xFFa", &[])), Some(2));
    assert_eq!(decide(&s, &request("GET", b"/admin", &[])), Some(3));
    assert_eq!(decide(&s, &request("GET", b"/aDmIn", &[])), Some(3));
}

#[test]
fn anchors_inside_rules_work_as_in_a_full_match() {
    let s = set(vec![
        HttpMatch {
            path: Some("^/a$".into()),
            ..Default::default()
        },
        HttpMatch {
            path: Some("/b$|/c".into()),
            ..Default::default()
        },
        HttpMatch {
            path: Some("/x$y".into()),
            ..Default::default()
        },
        HttpMatch {
            path: Some(r"/\bw\b.*".into()),
            ..Default::default()
        },
    ]);
    assert_eq!(decide(&s, &request("GET", b"/a", &[])), Some(0));
    assert_eq!(decide(&s, &request("GET", b"/a/", &[])), None);
    assert_eq!(decide(&s, &request("GET", b"/b", &[])), Some(1));
    assert_eq!(decide(&s, &request("GET", b"/c", &[])), Some(1));
    assert_eq!(decide(&s, &request("GET", b"/xy", &[])), None);
    assert_eq!(decide(&s, &request("GET", b"/w/1", &[])), Some(3));
    assert_eq!(decide(&s, &request("GET", b"/wx", &[])), None);
}

#[test]
fn host_and_headers() {
    let s = set(vec![
        HttpMatch {
            host: Some(r"(.*\.)?example\.com".into()),
            ..Default::default()
        },
        HttpMatch {
            headers: vec![header("X-Token", Some("a b")), header("x-present", None)],
            ..Default::default()
        },
        HttpMatch {
            headers: vec![header("host", Some("exact.local"))],
            ..Default::default()
        },
    ]);
    let get = |headers: &[(&str, &[u8])]| decide(&s, &request("GET", b"/", headers));
    assert_eq!(get(&[("Host", b"www.example.com")]), Some(0));
    assert_eq!(get(&[("hOsT", b" \texample.com \t")]), Some(0));
    assert_eq!(get(&[("Host", b"example.com.evil")]), None);
    assert_eq!(get(&[]), None, "no Host header: no match");
    assert_eq!(get(&[("X-Token", b"a b"), ("X-PRESENT", b"")]), Some(1));
    assert_eq!(get(&[("x-token", b"  a b "), ("x-present", b"1")]), Some(1));
    assert_eq!(get(&[("X-Token", b"A b"), ("X-Present", b"")]), None);
    assert_eq!(get(&[("X-Token", b"a  b"), ("X-Present", b"")]), None);
    assert_eq!(get(&[("X-Token", b"a b")]), None);
    // Any header of the name may satisfy the condition.
    assert_eq!(
        get(&[("X-Token", b"no"), ("X-Present", b""), ("X-Token", b"a b")]),
        Some(1)
    );
    assert_eq!(get(&[("Host", b"exact.local")]), Some(2));
}

#[test]
fn log_only_header_matches_do_not_gate() {
    let s = set(vec![HttpMatch {
        method: Some("GET".into()),
        headers: vec![HeaderMatch {
            name: "X-Audit".into(),
            value: Some("yes".into()),
            log_only: true,
        }],
        ..Default::default()
    }]);
    assert_eq!(decide(&s, &request("GET", b"/", &[])), Some(0));
    assert_eq!(
        decide(&s, &request("GET", b"/", &[("X-Audit", b"no")])),
        Some(0)
    );
    let tables = build_tables(&s, &[]).unwrap();
    assert_eq!(tables.needs, [0; 48]);
}

#[test]
fn the_lowest_matching_rule_wins_and_empty_rules_match_everything() {
    let s = set(vec![
        HttpMatch {
            method: Some("POST".into()),
            ..Default::default()
        },
        HttpMatch::default(),
        HttpMatch {
            method: Some("GET".into()),
            ..Default::default()
        },
    ]);
    assert_eq!(decide(&s, &request("POST", b"/", &[])), Some(0));
    assert_eq!(decide(&s, &request("GET", b"/", &[])), Some(1));
    assert_eq!(decide(&s, &request("BREW", b"*", &[])), Some(1));
    assert_eq!(
        decide(&HttpRuleSet::default(), &request("GET", b"/", &[])),
        None
    );
}

#[test]
fn tables_reject_requests_that_are_not_well_formed() {
    let s = set(vec![HttpMatch::default()]);
    let tables = build_tables(&s, &[]).unwrap();
    for req in [
        request("GE T", b"/", &[]),
        request("", b"/", &[]),
        request("GET", b"x", &[]),
        request("GET", b"/a b", &[]),
        request("GET", b"/a\x7f", &[]),
        request("GET", b"**", &[]),
        request("GET", b"/", &[("X Y", b"v")]),
        request("GET", b"/", &[("", b"v")]),
        request("GET", b"/", &[("X", b"a\x01")]),
        request("GET", b"/", &[("X", b"a\nb")]),
    ] {
        assert!(!req.is_well_formed(), "{req:?}");
        assert_eq!(tables.decide(&req), None, "{req:?}");
        assert_eq!(s.matching_rule(&req), Some(0));
    }
    let ok = request("GET", b"/\x80\xff~", &[("X", b"a\tb\x80")]);
    assert!(ok.is_well_formed());
    assert_eq!(tables.decide(&ok), Some(0));
}

#[test]
fn merged_sets_are_ordered_and_deduplicated() {
    let entry = |name: &str, location: &str| HttpRuleEntry {
        policy: PolicyRef {
            kind: "CiliumNetworkPolicy".into(),
            namespace: "default".into(),
            name: name.into(),
        },
        location: location.into(),
        rule: HttpMatch::default(),
    };
    let a10 = entry("a", "spec.ingress[0].toPorts[0].rules.http[10]");
    let a9 = entry("a", "spec.ingress[0].toPorts[0].rules.http[9]");
    let b0 = entry("b", "spec.ingress[0].toPorts[0].rules.http[0]");
    let merged = HttpRuleSet::merged([b0.clone(), a10.clone(), a9.clone(), a10.clone()]);
    assert_eq!(merged.rules, vec![a9.clone(), a10.clone(), b0.clone()]);
    assert_eq!(merged, HttpRuleSet::merged([a10, b0, a9]));
}

// ---- DFAs ----

const PATTERNS: &[&str] = &[
    "GET",
    "GET|HEAD",
    "P.*",
    "[A-Z]+",
    "(?i)get",
    "",
    "/api/.*",
    "/api/v[0-9]+/users/?.*",
    r"/a/b\?x=1",
    r".*\.html",
    "(?i)/admin(/.*)?",
    "/café",
    "/x/.{0,8}",
    "^/root$",
    r"/(?-u:\xFF)+",
    "(?m)^/m$",
    "(?m)/m$",
    "(?s)/.*",
    "a$b",
    r"/\bw\b.*",
    r"\B.*",
    "/[[:alpha:]]+",
    r"/\w+/\d+",
    "[^/]*",
    "(a|ab)(c|bcd)(d*)",
];

fn inputs(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        "",
        "GET",
        "get",
        "GeT",
        "HEAD",
        "POST",
        "P",
        "/api/",
        "/api/x",
        "/api/v1/users",
        "/api/v12/users/x",
        "/a/b?x=1",
        "/a/bbx=1",
        "x.html",
        ".html",
        "/ADMIN",
        "/admin/",
        "/café",
        "/x/12345678",
        "/x/123456789",
        "/root",
        "/m",
        "/m\n",
        "\n/m",
        "/\n",
        "ab",
        "/w",
        "/w/",
        "/wx",
        "abcd",
        "acd",
        "abcdd",
        "/a_1/2",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    out.push(b"/\xff\xff".to_vec());
    out.push(b"/\xff\xfe".to_vec());
    for _ in 0..300 {
        let len = rng.below(12) as usize;
        let alphabet = b"/aAbcdGETPmwx.?=1\n\xff\xc3\xa9_ -";
        out.push(
            (0..len)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect(),
        );
    }
    out
}

#[test]
fn dfas_agree_with_the_reference_regexes() {
    let mut rng = Rng::new(7);
    let inputs = inputs(&mut rng);
    // Each pattern alone, then all of them in one DFA.
    for p in PATTERNS {
        let dfa = build(
            &[Pattern {
                regex: p.to_string(),
                bit: 0,
            }],
            0,
        )
        .unwrap();
        for input in &inputs {
            assert_eq!(
                dfa.run(input) & 1 != 0,
                syntax::reference_match(p, input),
                "pattern {p:?} input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
    let all: Vec<Pattern> = PATTERNS
        .iter()
        .enumerate()
        .map(|(i, p)| Pattern {
            regex: p.to_string(),
            bit: i as u32,
        })
        .collect();
    let dfa = build(&all, 1 << 40).unwrap();
    assert!(dfa.num_states <= MAX_DFA_STATES && dfa.num_classes <= MAX_DFA_CLASSES);
    for input in &inputs {
        let mut want = 1u64 << 40;
        for (i, p) in PATTERNS.iter().enumerate() {
            if syntax::reference_match(p, input) {
                want |= 1 << i;
            }
        }
        assert_eq!(
            dfa.run(input),
            want,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn dfa_tables_have_the_kernel_layout() {
    let dfa = build(
        &[
            Pattern {
                regex: "GET|POST".into(),
                bit: 0,
            },
            Pattern {
                regex: "[A-Z]+".into(),
                bit: 63,
            },
        ],
        1 << 5,
    )
    .unwrap();
    assert_eq!(dfa.trans.len(), MAX_DFA_STATES * MAX_DFA_CLASSES);
    assert_eq!(dfa.accept.len(), MAX_DFA_STATES);
    // State 0 is dead: it loops and accepts only the always-bits.
    assert!((0..MAX_DFA_CLASSES).all(|c| dfa.trans[c] == 0));
    assert_eq!(dfa.accept[0], 1 << 5);
    assert_ne!(dfa.start, 0);
    for s in 0..MAX_DFA_STATES {
        for c in 0..MAX_DFA_CLASSES {
            let t = dfa.trans[s * MAX_DFA_CLASSES + c];
            if s >= dfa.num_states || c >= dfa.num_classes {
                assert_eq!(t, 0);
            } else {
                assert!(usize::from(t) < dfa.num_states);
            }
        }
        if s >= dfa.num_states {
            assert_eq!(dfa.accept[s], 0);
        }
    }
    assert!(
        dfa.classes
            .iter()
            .all(|&c| usize::from(c) < dfa.num_classes)
    );
    // Minimal: G, E, T, P, O, S, other upper-case letters, everything else; states: dead,
    // start, G, GE = POS, P, PO, GET = POST, other upper-case words.
    assert_eq!(dfa.num_classes, 8);
    assert_eq!(dfa.num_states, 8);
    assert_eq!(dfa.run(b"GET"), 1 | 1 << 5 | 1 << 63);
    assert_eq!(dfa.run(b"GETX"), 1 << 5 | 1 << 63);
    assert_eq!(dfa.run(b"get"), 1 << 5);
    assert_eq!(dfa.run(b""), 1 << 5);
}

// ---- Tables ----

#[test]
fn flow_headers_carry_their_index_in_the_name_dfa() {
    let s = set(vec![HttpMatch {
        headers: vec![header("X-A", Some("1"))],
        ..Default::default()
    }]);
    let flow: Vec<String> = ["x-a", "user-agent", "host"].map(String::from).to_vec();
    let t = build_tables(&s, &flow).unwrap();
    assert!(t.flow_headers);
    for (name, bits) in [
        ("X-a", 1 << 4 | 1 << CAPTURE_SHIFT),
        ("User-Agent", 2 << CAPTURE_SHIFT),
        ("HOST", 1 << SLOT_HOST | 3 << CAPTURE_SHIFT),
        ("Accept", 0),
        ("content-length", 1 << SLOT_CONTENT_LENGTH),
    ] {
        assert_eq!(t.name.run(name.as_bytes()), bits | BIT_WELLFORMED, "{name}");
    }
    // Everything else is as without flow headers.
    let plain = build_tables(&s, &[]).unwrap();
    assert!(!plain.flow_headers);
    assert_eq!(
        (&t.method, &t.path, &t.value),
        (&plain.method, &plain.path, &plain.value)
    );

    // Flow headers that do not fit the name DFA's states are left out, not an error.
    let long: Vec<String> = (0..15u8)
        .map(|i| {
            (0..40u8)
                .map(|j| char::from(b'a' + (i * 7 + j * 3) % 26))
                .collect()
        })
        .collect();
    let t = build_tables(&s, &long).unwrap();
    assert!(!t.flow_headers);
    assert_eq!(t.name, plain.name);
}

#[test]
fn table_masks() {
    let s = set(vec![
        HttpMatch {
            host: Some("a".into()),
            headers: vec![header("X-A", Some("1")), header("Host", None)],
            ..Default::default()
        },
        HttpMatch {
            headers: vec![header("x-a", Some("1")), header("X-B", None)],
            ..Default::default()
        },
    ]);
    let t = build_tables(&s, &[]).unwrap();
    assert_eq!(t.rule_bits, 0b11);
    // Requirements: 0 host regex `a`, 1 X-A = 1, 2 Host present, 3 X-B present.
    assert_eq!(&t.needs[..5], &[0b01, 0b11, 0b01, 0b10, 0]);
    assert_eq!(t.slot_reqs[SLOT_HOST], 0b0101);
    assert_eq!(t.slot_reqs[4], 0b0010);
    assert_eq!(t.slot_reqs[5], 0b1000);
    assert_eq!(t.slot_reqs[SLOT_CONTENT_LENGTH], 0);
    for (name, slot) in [
        ("content-length", SLOT_CONTENT_LENGTH),
        ("Transfer-Encoding", SLOT_TRANSFER_ENCODING),
        ("HOST", SLOT_HOST),
        ("upgrade", SLOT_UPGRADE),
        ("x-A", 4),
        ("X-b", 5),
    ] {
        assert_eq!(
            t.name.run(name.as_bytes()),
            1 << slot | BIT_WELLFORMED,
            "{name}"
        );
    }
    assert_eq!(t.name.run(b"X-C"), BIT_WELLFORMED);
    assert_eq!(
        t.value.run(b"123") & (BIT_CL_VALUE | BIT_CHUNKED),
        BIT_CL_VALUE
    );
    assert_eq!(
        t.value.run(b"ChUnKeD") & (BIT_CL_VALUE | BIT_CHUNKED),
        BIT_CHUNKED
    );
    assert_eq!(t.value.run(b"1") & 0xf, 0b1110);
    assert_eq!(t.value.run(b"a") & 0xf, 0b1101);
    assert_eq!(t.value.run(b"a\x01") & BIT_WELLFORMED, 0);
    // Every tchar can be part of a name.
    let odd = "!#$%&'*+-.^_`|~09azAZ";
    let odd_set = set(vec![HttpMatch {
        headers: vec![header(odd, Some("été ? (x)"))],
        ..Default::default()
    }]);
    let odd_tables = build_tables(&odd_set, &[]).unwrap();
    assert_eq!(
        odd_tables.name.run(odd.to_ascii_lowercase().as_bytes()),
        1 << 4 | BIT_WELLFORMED
    );
    assert_eq!(odd_tables.name.run(b"!#$%&'*+-.^_`|~09azA"), BIT_WELLFORMED);
    assert_eq!(odd_tables.value.run("été ? (x)".as_bytes()) & 1, 1);
    assert_eq!(
        decide(
            &odd_set,
            &request("GET", b"/", &[(odd, "été ? (x)".as_bytes())])
        ),
        Some(0)
    );
}

#[test]
fn tables_report_the_rule_that_does_not_fit() {
    let many = set((0..49).map(|_| HttpMatch::default()).collect());
    let e = build_tables(&many, &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "CiliumNetworkPolicy default/web spec.ingress[0].toPorts[0].rules.http[48]: the HTTP \
         rules of this port number 49; the datapath allows 48 per port"
    );
    assert!(build_tables(&set((0..48).map(|_| HttpMatch::default()).collect()), &[]).is_ok());

    let names = set((0..30)
        .map(|i| HttpMatch {
            headers: vec![header(&format!("X-{i}"), None)],
            ..Default::default()
        })
        .collect());
    let e = build_tables(&names, &[]).unwrap_err();
    assert_eq!(
        e.location,
        "CiliumNetworkPolicy default/web spec.ingress[0].toPorts[0].rules.http[28]"
    );
    assert!(e.message.contains("name 34 distinct headers"), "{e}");

    let mut rules: Vec<HttpMatch> = (0..47)
        .map(|i| HttpMatch {
            headers: vec![header("X-A", Some(&i.to_string()))],
            ..Default::default()
        })
        .collect();
    rules.push(HttpMatch {
        headers: vec![header("X-A", Some("a")), header("x-a", Some("b"))],
        ..Default::default()
    });
    let values = set(rules);
    let e = build_tables(&values, &[]).unwrap_err();
    assert_eq!(
        e.location,
        "CiliumNetworkPolicy default/web spec.ingress[0].toPorts[0].rules.http[47]"
    );
    assert!(e.message.contains("49 distinct header conditions"), "{e}");

    let states = set(vec![
        HttpMatch {
            path: Some("/a".into()),
            ..Default::default()
        },
        HttpMatch {
            path: Some("/[a-z]{300}".into()),
            ..Default::default()
        },
    ]);
    let e = build_tables(&states, &[]).unwrap_err();
    assert_eq!(
        e.location,
        "CiliumNetworkPolicy default/web spec.ingress[0].toPorts[0].rules.http[1]"
    );
    assert!(
        e.message.contains("need 30")
            && e.message
                .contains("DFA states for their path regexes; the datapath allows 256"),
        "{e}"
    );

    let literal: String = (0x21u8..0x7e)
        .filter(|b| b.is_ascii_alphanumeric())
        .map(char::from)
        .collect();
    let classes = set(vec![HttpMatch {
        path: Some(format!("/{literal}")),
        ..Default::default()
    }]);
    let e = build_tables(&classes, &[]).unwrap_err();
    assert!(
        e.message
            .contains("byte classes for their path regexes; the datapath allows 64"),
        "{e}"
    );

    let unicode = set(vec![HttpMatch {
        path: Some(r"/\pL".into()),
        ..Default::default()
    }]);
    let e = build_tables(&unicode, &[]).unwrap_err();
    assert!(e.location.ends_with("rules.http[0].path"), "{e}");
}

#[test]
fn regex_checks() {
    assert!(syntax::check_regex("/api/.*").is_ok());
    assert!(syntax::check_regex("/é").is_ok());
    assert!(syntax::check_regex(r"/(?-u:\xFF)").is_ok());
    for (pattern, message) in [
        (
            "/api/(",
            "`/api/(` is not a valid regular expression: unclosed group",
        ),
        (r"/\pL", "`/\\pL` needs Unicode"),
        (r"(?u)\w", "`(?u)\\w` needs Unicode"),
        (r"(?u:\b)x", "`(?u:\\b)x` needs Unicode"),
        ("(?x)a # comment", "cannot be matched as a whole value"),
    ] {
        let e = syntax::check_regex(pattern).unwrap_err();
        assert!(
            e.starts_with(message) || e.contains(message),
            "{pattern}: {e}"
        );
    }
}

// ---- Differential: the kernel's computation against the reference ----

#[test]
fn tables_decide_like_the_reference_matcher() {
    let cases: u64 = std::env::var("WEIR_HTTPGEN_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let (mut requests, mut matched, mut malformed) = (0, 0, 0);
    for seed in 0..cases {
        let (set, reqs) = random_http_case(seed);
        let tables = build_tables(&set, &[]).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        for req in &reqs {
            let want = if req.is_well_formed() {
                set.matching_rule(req)
            } else {
                malformed += 1;
                None
            };
            assert_eq!(
                tables.decide(req),
                want,
                "seed {seed}: {req:?}\nrules: {:#?}",
                set.rules
            );
            requests += 1;
            matched += usize::from(want.is_some());
        }
    }
    eprintln!("{requests} requests ({matched} allowed, {malformed} not well formed)");
    assert!(
        matched * 10 > requests,
        "too few matching requests: {matched}"
    );
    assert!(
        matched * 10 < requests * 9,
        "too many matching requests: {matched}"
    );
}

#[test]
fn generated_requests_round_trip_through_the_parser() {
    let mut parsed = 0;
    for seed in 0..300 {
        let (_, reqs) = random_http_case(seed);
        for req in reqs {
            let bytes = encode_request(&req);
            let hosts = req
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"host"))
                .count();
            let parsed_head = parse_request_head(&bytes);
            if req.is_well_formed() && hosts <= 1 && bytes.len() <= MAX_HEAD_LEN {
                assert_eq!(
                    parsed_head,
                    Parsed::Complete {
                        request: req,
                        head_len: bytes.len(),
                        framing: Framing::None
                    }
                );
                parsed += 1;
            } else if let Parsed::Complete { request, .. } = parsed_head {
                // Not well formed: bytes that read as another, well-formed request.
                assert!(request.is_well_formed());
                assert_ne!(request, req);
            }
        }
    }
    assert!(parsed > 12000, "{parsed}");
}

// ---- Parser ----

fn parse(text: &[u8]) -> Parsed {
    parse_request_head(text)
}

fn complete(text: &[u8]) -> (HttpRequest, usize, Framing) {
    match parse(text) {
        Parsed::Complete {
            request,
            head_len,
            framing,
        } => (request, head_len, framing),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(text)),
    }
}

#[test]
fn heads_parse() {
    let (req, len, framing) = complete(
        b"GET /a?b=%20 HTTP/1.1\r\nHost:  example.com \t\r\nX-E:\r\nX-T:\ta b\t\r\n\r\nBODY",
    );
    assert_eq!(len, 64);
    assert_eq!(framing, Framing::None);
    assert_eq!(
        req,
        request(
            "GET",
            b"/a?b=%20",
            &[("Host", b"example.com"), ("X-E", b""), ("X-T", b"a b")]
        )
    );
    let (req, _, framing) = complete(b"OPTIONS * HTTP/1.0\r\nContent-Length: 0012\r\n\r\n");
    assert_eq!((req.version, req.target.as_slice()), (0, &b"*"[..]));
    assert_eq!(framing, Framing::Length(12));
    let (_, _, framing) = complete(b"POST / HTTP/1.1\r\nTransfer-Encoding: ChunKed\r\n\r\n");
    assert_eq!(framing, Framing::Chunked);
    let (_, _, framing) = complete(b"POST / HTTP/1.1\r\ncontent-length: 4294967295\r\n\r\n");
    assert_eq!(framing, Framing::Length(4_294_967_295));
    let (req, _, _) = complete(b"PRI * HTTP/1.1\r\nX: \x80\xff\r\n\r\n");
    assert_eq!(req.headers[0].1, b"\x80\xff");
}

#[test]
fn heads_are_incomplete_until_the_empty_line() {
    let text = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for end in 0..text.len() {
        assert_eq!(parse(&text[..end]), Parsed::Incomplete, "{end}");
    }
    assert!(matches!(parse(text), Parsed::Complete { .. }));
}

#[test]
fn malformed_heads() {
    for text in [
        &b" GET / HTTP/1.1\r\n\r\n"[..],
        b"\r\nGET / HTTP/1.1\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET x HTTP/1.1\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\n\r\n",
        b"GET *x HTTP/1.1\r\n\r\n",
        b"GET /a\x7f HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.2\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / http/1.1\r\n\r\n",
        b"GET / HTTP/1.1\n\r\n",
        b"GET / HTTP/1.1 \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\n: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\nC: d\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\rC: d\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: \x00\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: \x7f\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length:\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 4294967296\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        assert_eq!(
            parse(text),
            Parsed::Invalid(Invalid::Malformed),
            "{:?}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn errors_are_found_at_the_first_byte_that_cannot_continue() {
    assert_eq!(parse(b"\x16\x03\x01"), Parsed::Invalid(Invalid::Malformed));
    assert_eq!(parse(b"GET /"), Parsed::Incomplete);
    assert_eq!(parse(b"GET /\x00"), Parsed::Invalid(Invalid::Malformed));
    assert_eq!(parse(b"GET / HTTP/2"), Parsed::Invalid(Invalid::Malformed));
    assert_eq!(parse(b"PRI * HTTP/2.0"), Parsed::Incomplete);
    assert_eq!(
        parse(b"PRI * HTTP/2.0\r\n"),
        Parsed::Invalid(Invalid::Unsupported)
    );
    assert_eq!(parse(b"CONNECT "), Parsed::Invalid(Invalid::Unsupported));
    assert_eq!(parse(b"CONNECT"), Parsed::Incomplete);
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nUpgrade: h2c"),
        Parsed::Incomplete,
        "header checks happen at the end of the line"
    );
}

#[test]
fn unsupported_heads() {
    for text in [
        &b"CONNECT example.com:443 HTTP/1.1\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nupgrade:\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
    ] {
        assert_eq!(
            parse(text),
            Parsed::Invalid(Invalid::Unsupported),
            "{:?}",
            String::from_utf8_lossy(text)
        );
    }
    // `PRI` is otherwise an ordinary method.
    assert!(matches!(
        parse(b"PRI / HTTP/1.1\r\n\r\n"),
        Parsed::Complete { .. }
    ));
    assert_eq!(
        parse(b"PRI / HTTP/2.0\r\n\r\n"),
        Parsed::Invalid(Invalid::Malformed)
    );
}

#[test]
fn head_length_limit() {
    let head_of = |len: usize| {
        let mut h = b"GET / HTTP/1.1\r\nX: ".to_vec();
        let fill = len - h.len() - 4;
        h.extend(std::iter::repeat_n(b'a', fill));
        h.extend_from_slice(b"\r\n\r\n");
        assert_eq!(h.len(), len);
        h
    };
    let max = head_of(MAX_HEAD_LEN);
    assert!(matches!(parse(&max), Parsed::Complete { head_len, .. } if head_len == MAX_HEAD_LEN));
    let over = head_of(MAX_HEAD_LEN + 1);
    assert_eq!(parse(&over), Parsed::Invalid(Invalid::TooLong));
    assert_eq!(
        parse(&over[..MAX_HEAD_LEN]),
        Parsed::Invalid(Invalid::TooLong)
    );
    assert_eq!(parse(&over[..MAX_HEAD_LEN - 1]), Parsed::Incomplete);
    // An error inside the limit is reported as such.
    let mut bad = over.clone();
    bad[20] = 0;
    assert_eq!(parse(&bad), Parsed::Invalid(Invalid::Malformed));
}

// ---- Streams ----

/// Every output of a stream fed `parts`, then an empty feed: requests with offsets, then the
/// error if any.
fn run_stream(parts: &[&[u8]]) -> (Vec<(HttpRequest, u64)>, Option<Invalid>) {
    let mut s = RequestStream::new();
    let mut out = Vec::new();
    let mut error = None;
    for part in parts.iter().copied().chain([&b""[..]]) {
        match s.feed(part) {
            Ok(reqs) => out.extend(reqs),
            Err(e) => {
                assert!(error.is_none(), "the error is returned once");
                error = Some(e);
            }
        }
    }
    if error.is_some() {
        assert_eq!(s.feed(b"GET / HTTP/1.1\r\n\r\n"), Ok(vec![]));
    }
    assert_eq!(s.invalid(), error);
    (out, error)
}

/// The same result for the whole input, every split point and byte-by-byte feeding.
fn stream(input: &[u8]) -> (Vec<(HttpRequest, u64)>, Option<Invalid>) {
    let whole = run_stream(&[input]);
    for cut in 0..=input.len() {
        assert_eq!(
            run_stream(&[&input[..cut], &input[cut..]]),
            whole,
            "split at {cut}"
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run_stream(&bytes), whole, "byte by byte");
    whole
}

fn methods(out: &[(HttpRequest, u64)]) -> Vec<(String, u64)> {
    out.iter()
        .map(|(r, o)| (String::from_utf8_lossy(&r.method).into_owned(), *o))
        .collect()
}

#[test]
fn pipelined_requests_with_bodies() {
    let parts: [(&str, &[u8]); 5] = [
        ("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", b"GET /"),
        (
            "GET /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"4;name=\"v al\"\r\nab\r\n\r\n10\r\n0123456789abcdef\r\n0;last\r\nTrailer-A: x\r\nT: \r\n\r\n",
        ),
        ("HEAD / HTTP/1.0\r\n\r\n", b""),
        ("PUT / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b""),
        ("DELETE / HTTP/1.1\r\n\r\n", b""),
    ];
    let mut input = Vec::new();
    let mut want = Vec::new();
    for (head, body) in parts {
        input.extend_from_slice(head.as_bytes());
        let method = head.split(' ').next().unwrap().to_string();
        want.push((method, input.len() as u64));
        input.extend_from_slice(body);
    }
    let (out, error) = stream(&input);
    assert_eq!(error, None);
    assert_eq!(methods(&out), want);
}

#[test]
fn streams_stop_at_the_first_invalid_input() {
    let (out, error) = stream(
        b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    );
    assert_eq!(methods(&out), vec![("GET".into(), 18)]);
    assert_eq!(error, Some(Invalid::Unsupported));

    for (input, want) in [
        // Chunk size: 1 to 8 hex digits, then `;` or CRLF.
        (
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n123456789\r\n"[..],
            1,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            1,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\n",
            1,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n",
            1,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a\x00\r\n",
            1,
        ),
        // Chunk data must be followed by CRLF.
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            1,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\n",
            1,
        ),
        // Trailers use the header-line grammar.
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA b: c\r\n\r\n",
            1,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\r\n",
            1,
        ),
        // A body of exactly Content-Length, then garbage.
        (b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab\x00", 1),
        (b"\x16\x03\x01\x02\x00", 0),
    ] {
        let (out, error) = stream(input);
        assert_eq!(out.len(), want, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(
            error,
            Some(Invalid::Malformed),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    let mut long = b"GET /".to_vec();
    long.extend(std::iter::repeat_n(b'a', MAX_HEAD_LEN));
    let (out, error) = run_stream(&[&long[..100], &long[100..]]);
    assert!(out.is_empty());
    assert_eq!(error, Some(Invalid::TooLong));
}

#[test]
fn an_error_after_requests_in_the_same_feed_comes_with_the_next_call() {
    let mut s = RequestStream::new();
    let out = s.feed(b"GET / HTTP/1.1\r\n\r\nGET x").unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(s.invalid(), Some(Invalid::Malformed));
    assert_eq!(s.feed(b""), Err(Invalid::Malformed));
    assert_eq!(s.feed(b"GET / HTTP/1.1\r\n\r\n"), Ok(vec![]));
}

#[test]
fn random_pipelines_split_anywhere() {
    let mut rng = Rng::new(99);
    for seed in 0..20 {
        let (_, reqs) = random_http_case(seed);
        let mut input = Vec::new();
        let mut want = Vec::new();
        for req in reqs.iter().filter(|r| r.is_well_formed()).take(4) {
            if req
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"host"))
                .count()
                > 1
            {
                continue;
            }
            let mut req = req.clone();
            let body = rng.below(3);
            if body == 1 {
                req.headers
                    .push((b"Content-Length".to_vec(), b"3".to_vec()));
            } else if body == 2 {
                req.headers
                    .push((b"transfer-encoding".to_vec(), b"chunked".to_vec()));
            }
            input.extend(encode_request(&req));
            want.push((req, input.len() as u64));
            match body {
                1 => input.extend_from_slice(b"abc"),
                2 => input.extend_from_slice(b"3\r\nabc\r\n1;x=y\r\n\n\r\n0\r\nT: 1\r\n\r\n"),
                _ => {}
            }
        }
        if input.len() > 3000 {
            continue;
        }
        assert_eq!(stream(&input), (want, None), "seed {seed}");
    }
}

#[test]
fn grpc_rule_sets() {
    let path = |p: &str| HttpMatch {
        method: Some("POST".into()),
        path: Some(p.into()),
        ..Default::default()
    };
    for grpc in [
        "/com.example.catalog.ProductService/GetProduct",
        "/grpc.health.v1.Health/.*",
        r"/com\.example\.catalog\.ProductService/(GetProduct|UpdateStock)",
        "/_pkg.Svc_2/",
        "/a.B/c",
    ] {
        assert!(set(vec![path(grpc)]).is_grpc(), "{grpc}");
    }
    for not_grpc in [
        "/api/v1/users",
        "/v1.0/users",
        "/Greeter/SayHello",
        "/com.example.Svc",
        "com.example.Svc/M",
        "/com..example/M",
        "/.*/GetProduct",
        "/com.example-x.Svc/M",
        "/index.html/x",
        "/docs.v2/intro",
    ] {
        assert!(!set(vec![path(not_grpc)]).is_grpc(), "{not_grpc}");
    }
    // Every rule must be a gRPC path; a rule without a path allows any path.
    let grpc = path("/com.example.catalog.ProductService/GetProduct");
    assert!(set(vec![grpc.clone(), path("/a.B/c")]).is_grpc());
    assert!(!set(vec![grpc.clone(), path("/api/v1/users")]).is_grpc());
    assert!(
        !set(vec![
            grpc,
            HttpMatch {
                method: Some("GET".into()),
                ..Default::default()
            }
        ])
        .is_grpc()
    );
    assert!(!HttpRuleSet::default().is_grpc());
}
