//! The properties the fuzz target `request_stream` checks (`policy/fuzz`,
//! `weir_policy::testgen::check_request_stream`), on deterministic inputs: pipelined requests
//! of `random_http_case` with bodies, some mutated bytes and random cut points. Needs the
//! `testgen` feature (on in `cargo test --workspace`, through flow-agent's dev-dependency).
#![cfg(feature = "testgen")]

use weir_policy::http::{HttpRequest, Invalid, MAX_HEAD_LEN, RequestStream, parse_request_head};
use weir_policy::testgen::{
    MAX_CUTS, Rng, check_request_stream, encode_request, random_http_case, request_stream_input,
};

/// Heads the parser refuses as `Unsupported`, and a few other odd ones.
const ODD_HEADS: &[&[u8]] = &[
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
];

/// Bytes that matter to the grammar.
const INTERESTING: &[u8] = b"\r\n :;\t0\x00\x7f\x80\xffaF/*";

/// A body for `req`: the framing header is added to it.
fn body(rng: &mut Rng, req: &mut HttpRequest) -> Vec<u8> {
    match rng.below(4) {
        1 => {
            let n = rng.below(20);
            req.headers
                .push((b"Content-Length".to_vec(), n.to_string().into_bytes()));
            (0..n).map(|_| rng.next_u64() as u8).collect()
        }
        2 => {
            req.headers
                .push((b"Transfer-Encoding".to_vec(), b"chunked".to_vec()));
            let mut out = Vec::new();
            for _ in 0..rng.below(3) {
                let n = rng.range(1, 20);
                out.extend_from_slice(format!("{n:x}").as_bytes());
                if rng.chance(30) {
                    out.extend_from_slice(b";ext=\"a b\"");
                }
                out.extend_from_slice(b"\r\n");
                out.extend((0..n).map(|_| rng.next_u64() as u8));
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(if rng.chance(50) {
                b"0\r\n\r\n"
            } else {
                b"0;last\r\nTrailer-A: x\r\nT: \r\n\r\n"
            });
            out
        }
        _ => Vec::new(),
    }
}

fn mutate(rng: &mut Rng, stream: &mut Vec<u8>) {
    for _ in 0..rng.below(4) {
        let len = stream.len() as u64;
        if len == 0 {
            return;
        }
        let i = rng.below(len) as usize;
        let byte = if rng.chance(70) {
            *rng.pick(INTERESTING)
        } else {
            rng.next_u64() as u8
        };
        match rng.below(4) {
            0 => stream[i] = byte,
            1 => stream.insert(i, byte),
            2 => {
                stream.remove(i);
            }
            _ => stream.truncate(i),
        }
    }
}

/// A connection's bytes: one to four requests of a random case, with bodies, sometimes an odd
/// or an overlong head, sometimes mutated.
fn stream(rng: &mut Rng) -> Vec<u8> {
    let (_, requests) = random_http_case(rng.below(1000));
    let mut out = Vec::new();
    for _ in 0..rng.range(1, 4) {
        if rng.chance(5) {
            let odd = *rng.pick(ODD_HEADS);
            out.extend_from_slice(odd);
            continue;
        }
        let mut req = rng.pick(&requests).clone();
        if rng.chance(3) {
            // Around the head length limit.
            let pad = MAX_HEAD_LEN.saturating_sub(encode_request(&req).len() + 12);
            let pad = pad + rng.below(8) as usize;
            req.headers.push((b"X-Pad".to_vec(), vec![b'p'; pad]));
        }
        let body = body(rng, &mut req);
        out.extend(encode_request(&req));
        out.extend(body);
    }
    if rng.chance(60) {
        mutate(rng, &mut out);
    }
    out
}

/// A fuzz input for `stream`: up to `MAX_CUTS` random cut points.
fn input(rng: &mut Rng, stream: &[u8]) -> Vec<u8> {
    let len = u16::try_from(stream.len()).expect("streams fit a u16 cut");
    let cuts: Vec<u16> = (0..rng.below(MAX_CUTS as u64 + 1))
        .map(|_| rng.below(u64::from(len) + 1) as u16)
        .collect();
    request_stream_input(&cuts, stream)
}

/// The same stream fed whole, for the statistics.
fn outcome(stream: &[u8]) -> (usize, Option<Invalid>) {
    let mut s = RequestStream::new();
    let requests = s.feed(stream).map_or(0, |r| r.len());
    let _ = s.feed(b"");
    (requests, s.invalid())
}

#[test]
fn generated_streams_keep_every_property() {
    let cases: u64 = std::env::var("WEIR_STREAM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let mut rng = Rng::new(0x5354_5245_414d);
    let (mut requests, mut clean, mut malformed, mut too_long, mut unsupported) = (0, 0, 0, 0, 0);
    for case in 0..cases {
        let stream = stream(&mut rng);
        let data = input(&mut rng, &stream);
        check_hint(case, &data, || check_request_stream(&data));
        let (n, error) = outcome(&stream);
        requests += n;
        match error {
            None => clean += 1,
            Some(Invalid::Malformed) => malformed += 1,
            Some(Invalid::TooLong) => too_long += 1,
            Some(Invalid::Unsupported) => unsupported += 1,
        }
    }
    eprintln!(
        "{cases} streams: {requests} requests; {clean} clean, {malformed} malformed, \
         {too_long} too long, {unsupported} unsupported"
    );
    // The generator reaches every outcome.
    assert!(requests as u64 > cases, "{requests} requests");
    assert!(clean * 4 > cases, "{clean} clean streams");
    assert!(malformed * 10 > cases, "{malformed} malformed streams");
    assert!(too_long > 10, "{too_long} streams with an overlong head");
    assert!(unsupported > 10, "{unsupported} unsupported streams");
}

/// Runs `check`, naming the case and its input if it panics.
fn check_hint(case: u64, data: &[u8], check: impl FnOnce() + std::panic::UnwindSafe) {
    if let Err(panic) = std::panic::catch_unwind(check) {
        eprintln!("case {case}: input {:?}", String::from_utf8_lossy(data));
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn hand_picked_streams_keep_every_property() {
    let heads: &[&[u8]] = &[
        b"",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET /api/v1/users/7 HTTP/1.1\r\nHost: www.example.com\r\n\r\nHEAD /api/v2/users HTTP/1.0\r\nhost: example.com\r\n\r\n",
        b"POST /upload/x HTTP/1.1\r\nContent-Type: application/json\r\nX-Api-Key: k\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n",
        b"POST /chunks?a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nDELETE / HTTP/1.1\r\nHost: api.local:80\r\nAuthorization: Bearer t0k3n\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nX-Empty:\r\n\r\n",
        b"PATCH /\xc3\xa9 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\nGET x",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
    ];
    for stream in heads {
        for cut in 0..=stream.len() {
            let cut = cut as u16;
            check_request_stream(&request_stream_input(&[cut], stream));
            check_request_stream(&request_stream_input(&[cut, cut, cut / 2], stream));
        }
    }
    // A head past the limit, cut around it.
    let mut long = b"GET /".to_vec();
    long.extend(std::iter::repeat_n(b'a', MAX_HEAD_LEN));
    for cut in [0, 100, MAX_HEAD_LEN - 1, MAX_HEAD_LEN, MAX_HEAD_LEN + 1] {
        check_request_stream(&request_stream_input(&[cut as u16], &long));
    }
    assert!(matches!(
        parse_request_head(&long),
        weir_policy::http::Parsed::Invalid(Invalid::TooLong)
    ));
}

/// The fuzz target's seed corpus (`policy/fuzz/seeds/request_stream/`) is a handful of small
/// generated inputs that pass the check: this test compares the committed files with the
/// generator's output. `WEIR_WRITE_FUZZ_SEEDS=1 cargo test -p weir-policy --features testgen
/// --test http_stream_props fuzz_seeds` rewrites them.
#[test]
fn fuzz_seeds_are_the_generated_ones() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/request_stream");
    let write = std::env::var_os("WEIR_WRITE_FUZZ_SEEDS").is_some();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut rng = Rng::new(0x5345_4544);
    let mut written = 0;
    while written < 12 {
        let stream = stream(&mut rng);
        let data = input(&mut rng, &stream);
        if data.len() > 600 {
            continue;
        }
        check_request_stream(&data);
        let path = dir.join(format!("seed-{written:02}"));
        if write {
            std::fs::write(&path, &data).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (WEIR_WRITE_FUZZ_SEEDS=1 writes it)",
                    path.display()
                )
            });
            assert_eq!(
                committed,
                data,
                "{} differs from the generator's output",
                path.display()
            );
        }
        written += 1;
    }
}
