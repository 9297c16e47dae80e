//! Small matchers used by the flow filters: DNS name and node name
//! patterns, HTTP status code patterns, CIDRs, and the path of a request URI.

use std::borrow::Cow;
use std::net::IpAddr;

use regex::Regex;

/// What a DNS name pattern's element may match besides literals.
const ANY_FQDN: &str = r"(?:[-0-9_a-z]+(?:\.[-0-9_a-z]+)*)";

/// Cluster assumed for node names that carry none.
pub(crate) const DEFAULT_CLUSTER: &str = "default";

/// Appends the regex for one DNS name pattern: surrounding space and one
/// trailing dot are ignored, letters are lowercased, `*` matches any run of
/// letters, digits, `-` and `.`; only `[-0-9_a-z.*]` are allowed.
fn push_fqdn_pattern(out: &mut String, pattern: &str) -> Result<(), String> {
    let trimmed = pattern.trim();
    let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let canonical = trimmed.to_lowercase();
    if canonical.is_empty() {
        return Err("empty pattern".into());
    }
    if canonical.ends_with('.') {
        return Err("more than one trailing dot".into());
    }
    for c in canonical.chars() {
        match c {
            '.' => out.push_str(r"\."),
            '*' => out.push_str("[-.0-9a-z]*"),
            '-' | '_' | '0'..='9' | 'a'..='z' => out.push(c),
            other => return Err(format!("character {other:?} is not allowed")),
        }
    }
    Ok(())
}

/// One regex matching any of `patterns` in full. On error, returns the
/// offending pattern and the reason.
pub(crate) fn fqdn_regex(patterns: &[String]) -> Result<Regex, (String, String)> {
    let mut re = String::from(r"\A(?:");
    for (i, pattern) in patterns.iter().enumerate() {
        if i > 0 {
            re.push('|');
        }
        push_fqdn_pattern(&mut re, pattern).map_err(|e| (pattern.clone(), e))?;
    }
    re.push_str(r")\z");
    Regex::new(&re).map_err(|e| (patterns.join(","), e.to_string()))
}

/// One regex matching `cluster/node` names against any of `patterns`. A
/// pattern is `[cluster-pattern/]node-pattern`; each part is a DNS name
/// pattern and an empty part matches everything.
pub(crate) fn node_name_regex(patterns: &[String]) -> Result<Regex, (String, String)> {
    let mut re = String::from(r"\A(?:");
    for (i, pattern) in patterns.iter().enumerate() {
        if i > 0 {
            re.push('|');
        }
        let fail = |e: String| (pattern.clone(), e);
        if pattern.is_empty() {
            return Err(fail("empty pattern".into()));
        }
        let parts: Vec<&str> = pattern.split('/').collect();
        let (cluster, node) = match parts.as_slice() {
            [node] => ("", *node),
            [cluster, node] => (*cluster, *node),
            _ => return Err(fail("more than one '/'".into())),
        };
        for (n, part) in [cluster, node].into_iter().enumerate() {
            if n == 1 {
                re.push('/');
            }
            if part.is_empty() {
                re.push_str(ANY_FQDN);
            } else {
                push_fqdn_pattern(&mut re, part).map_err(fail)?;
            }
        }
    }
    re.push_str(r")\z");
    Regex::new(&re).map_err(|e| (patterns.join(","), e.to_string()))
}

/// `"404"` (exact) or `"4+"`/`"40+"` (prefix) of a three digit status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StatusPattern {
    Exact(String),
    Prefix(String),
}

impl StatusPattern {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let first_ok = b.first().is_some_and(|c| (b'1'..=b'5').contains(c));
        if b.len() == 3 && first_ok && b[1..].iter().all(u8::is_ascii_digit) {
            return Some(Self::Exact(s.to_owned()));
        }
        if let Some(prefix) = s.strip_suffix('+') {
            let p = prefix.as_bytes();
            let ok = first_ok && (p.len() == 1 || (p.len() == 2 && p[1].is_ascii_digit()));
            if ok {
                return Some(Self::Prefix(prefix.to_owned()));
            }
        }
        None
    }

    /// `code` is the status code zero-padded to at least three digits.
    pub(crate) fn matches(&self, code: &str) -> bool {
        match self {
            Self::Exact(s) => s == code,
            Self::Prefix(p) => code.starts_with(p.as_str()),
        }
    }
}

/// Writes `code` zero-padded to three digits into `buf`, without allocating.
pub(crate) fn format_status(code: u32, buf: &mut [u8; 10]) -> &str {
    let mut digits = [0u8; 10];
    let mut n = code;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let width = len.max(3);
    for (i, slot) in buf.iter_mut().take(width).enumerate() {
        let from_end = width - 1 - i;
        *slot = if from_end < len {
            digits[from_end]
        } else {
            b'0'
        };
    }
    std::str::from_utf8(&buf[..width]).unwrap_or("")
}

/// An IPv4 or IPv6 prefix; the address may have host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// `addr/len`, `len` in decimal without sign or leading zeros.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (addr, len) = s.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let digits_ok = !len.is_empty()
            && len.bytes().all(|b| b.is_ascii_digit())
            && (len == "0" || !len.starts_with('0'));
        if !digits_ok || len.len() > 3 {
            return None;
        }
        let len: u8 = len.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some(Self { addr, len })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The decoded path of `url` read as an HTTP request target (Go's
/// `url.ParseRequestURI` rules): an absolute path, or an absolute URI whose
/// path follows the authority. `None` when it is not a valid request URI.
pub(crate) fn request_uri_path(url: &str) -> Option<Cow<'_, str>> {
    if url.is_empty() || url.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    if url == "*" {
        return Some(Cow::Borrowed("*"));
    }
    let (has_scheme, rest) = split_scheme(url)?;
    // The query is not part of the path.
    let rest = match rest.split_once('?') {
        Some((before, _)) => before,
        None => rest,
    };
    if !rest.starts_with('/') {
        // "mailto:x" style URIs have no path; relative references are not
        // valid request targets.
        return has_scheme.then_some(Cow::Borrowed(""));
    }
    let path = if has_scheme && rest.starts_with("//") {
        let after = &rest[2..];
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        if !authority_ok(authority) {
            return None;
        }
        path
    } else {
        rest
    };
    percent_decode(path)
}

/// Splits off `scheme:`; `None` if the text starts with `:`.
fn split_scheme(url: &str) -> Option<(bool, &str)> {
    for (i, b) in url.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return None,
            b':' => return Some((true, &url[i + 1..])),
            _ => return Some((false, url)),
        }
    }
    Some((false, url))
}

/// `[userinfo@]host[:port]` with a numeric port, if any.
fn authority_ok(authority: &str) -> bool {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let port = if let Some(rest) = host_port.strip_prefix('[') {
        match rest.split_once(']') {
            Some((_, "")) => None,
            Some((_, after)) => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return false,
            },
            None => return false,
        }
    } else {
        host_port.rsplit_once(':').map(|(_, port)| port)
    };
    port.is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// Decodes `%XX` escapes; `None` on a malformed escape.
fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('%') {
        return Some(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16))?;
            let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16))?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fqdn_patterns() {
        let re = fqdn_regex(&strings(&["*.cilium.io", "*.org.", "Example.COM"])).unwrap();
        assert!(re.is_match("www.cilium.io"));
        assert!(re.is_match("a.b.cilium.io"));
        assert!(!re.is_match("cilium.io"));
        assert!(re.is_match("empire.org"));
        assert!(re.is_match("example.com"));
        assert!(!re.is_match("example.com."));
        assert!(fqdn_regex(&strings(&["*"])).unwrap().is_match(""));
        assert!(fqdn_regex(&strings(&[""])).is_err());
        assert!(fqdn_regex(&strings(&["."])).is_err());
        assert!(fqdn_regex(&strings(&["a.."])).is_err());
        assert!(fqdn_regex(&strings(&["a b"])).is_err());
    }

    #[test]
    fn node_name_patterns() {
        let re = node_name_regex(&strings(&["k8s*"])).unwrap();
        assert!(re.is_match("default/k8s1"));
        assert!(re.is_match("other/k8s2"));
        assert!(!re.is_match("default/node1"));
        let re = node_name_regex(&strings(&["cluster/", "/node-1", "c2/*.example.com"])).unwrap();
        assert!(re.is_match("cluster/anything.at-all"));
        assert!(re.is_match("whatever/node-1"));
        assert!(re.is_match("c2/a.example.com"));
        assert!(!re.is_match("c3/a.example.com"));
        assert!(node_name_regex(&strings(&[""])).is_err());
        assert!(node_name_regex(&strings(&["a/b/c"])).is_err());
        assert!(node_name_regex(&strings(&["no~de"])).is_err());
    }

    #[test]
    fn status_patterns() {
        assert_eq!(
            StatusPattern::parse("404"),
            Some(StatusPattern::Exact("404".into()))
        );
        assert_eq!(
            StatusPattern::parse("4+"),
            Some(StatusPattern::Prefix("4".into()))
        );
        assert_eq!(
            StatusPattern::parse("50+"),
            Some(StatusPattern::Prefix("50".into()))
        );
        for bad in ["", "600", "40", "4040", "+", "404+", "6+", "4x+", "abc"] {
            assert_eq!(StatusPattern::parse(bad), None, "{bad:?}");
        }
        let mut buf = [0u8; 10];
        assert_eq!(format_status(404, &mut buf), "404");
        assert_eq!(format_status(7, &mut buf), "007");
        assert_eq!(format_status(1234, &mut buf), "1234");
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.1/8").unwrap();
        assert!(c.contains("10.200.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("::ffff:10.0.0.1".parse().unwrap()));
        let c = Cidr::parse("fd00::/8").unwrap();
        assert!(c.contains("fd12::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0/8",
            "10.0.0.0/08",
            "10.0.0.0/+8",
            "x/8",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn request_paths() {
        let p = |s| request_uri_path(s).map(|c| c.into_owned());
        assert_eq!(p("http://h.example:80/v1/x?y=1").as_deref(), Some("/v1/x"));
        assert_eq!(p("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(p("http://host").as_deref(), Some(""));
        assert_eq!(p("mailto:x").as_deref(), Some(""));
        assert_eq!(p("relative/path"), None);
        assert_eq!(p(""), None);
        assert_eq!(p("/bad%zz"), None);
        assert_eq!(p("http://host:port/x"), None);
        assert_eq!(p("http://[::1]:8080/x").as_deref(), Some("/x"));
    }
}
