//! Text conventions of Go's standard library that Hubble's output relies on.
//!
//! Hubble is written in Go, so its output follows Go's formatting of
//! durations (`5m1.515181665s`), quoted strings (`%q`), `encoding/json`'s
//! HTML-safe escaping and its own digit grouping. weir reproduces them here
//! so that scripts written against `hubble` keep working against `weir`.

use std::time::Duration;

/// Formats `n` with a comma every three digits: `2348885` → `2,348,885`.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Formats a duration like Go's `time.Duration.String`: `0s`, `1.5µs`,
/// `250ms`, `45s`, `5m1.515181665s`, `26h0m0s`.
pub fn duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        // Below one second Go picks the largest unit that keeps an integer part.
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, scale));
    }
    let total_secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let hours = total_secs / 3600;
    let minutes = (total_secs % 3600) / 60;
    let secs = total_secs % 60;
    let secs = fraction(u128::from(secs as u64) * 1_000_000_000 + sub, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `value / scale` with the fractional digits Go prints (no trailing zeros).
fn fraction(value: u128, scale: u128) -> String {
    let int = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return int.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

/// An error from [`parse_duration`], worded like Go's `time.ParseDuration`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time: {reason} {input:?}")]
pub struct DurationError {
    reason: &'static str,
    input: String,
}

/// Parses a duration the way Go's `time.ParseDuration` does: a sequence of
/// decimal numbers, each with an optional fraction and a unit (`ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h`), such as `300ms`, `1.5h` or `2h45m`, with an
/// optional sign. Returns the signed number of nanoseconds.
pub fn parse_duration(input: &str) -> Result<i128, DurationError> {
    let err = |reason| DurationError {
        reason,
        input: input.to_owned(),
    };
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(err("invalid duration"));
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(n)
            }
            None => ("", rest),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err("invalid duration"));
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let (unit, rest) = rest.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(err("missing unit in duration")),
            _ => return Err(err("unknown unit in duration")),
        };
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| err("invalid duration"))?
        };
        let mut value = int
            .checked_mul(scale)
            .ok_or_else(|| err("invalid duration"))?;
        let mut place = scale;
        for digit in frac_part.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            value += i128::from(digit - b'0') * place;
        }
        total = total
            .checked_add(value)
            .ok_or_else(|| err("invalid duration"))?;
        if total > i128::from(i64::MAX) {
            return Err(err("invalid duration"));
        }
        s = rest;
    }
    Ok(if negative { -total } else { total })
}

/// Parses a non-negative Go duration into a [`Duration`] (for flags such as
/// `--timeout 5s`).
pub fn parse_std_duration(input: &str) -> Result<Duration, String> {
    match parse_duration(input) {
        Ok(n) if n >= 0 => Ok(Duration::from_nanos(n as u64)),
        Ok(_) => Err(format!("negative duration {input:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Quotes `s` like Go's `strconv.Quote` (`%q`): double quotes, backslash
/// escapes for quotes, backslashes and control characters.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Applies `encoding/json`'s HTML-safe escaping to JSON text: `<`, `>`, `&`,
/// U+2028 and U+2029 become `\u003c`, `\u003e`, `\u0026`, `\u2028`,
/// `\u2029`. These characters can only occur inside JSON strings, so the
/// result is the same JSON value.
pub fn html_escape_json(json: &str) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json.to_owned();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Appends `s` as a JSON string literal encoded the way `encoding/json` does.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Renders a list of strings like Go's `fmt` prints a `[]string` with `%v`:
/// `[a b c]`.
pub fn string_list(items: &[&str]) -> String {
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_digits_by_three() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(2_348_885), "2,348,885");
        assert_eq!(group_digits(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn formats_durations_like_go() {
        let d = Duration::from_nanos;
        assert_eq!(duration(d(0)), "0s");
        assert_eq!(duration(d(999)), "999ns");
        assert_eq!(duration(d(1_500)), "1.5µs");
        assert_eq!(duration(d(250_000_000)), "250ms");
        assert_eq!(duration(d(1_000_000_000)), "1s");
        assert_eq!(duration(d(301_515_181_665)), "5m1.515181665s");
        assert_eq!(duration(d(1_000_000_000_000)), "16m40s");
        assert_eq!(duration(Duration::from_secs(93_600)), "26h0m0s");
        assert_eq!(duration(Duration::from_secs(3_723)), "1h2m3s");
    }

    #[test]
    fn parses_durations_like_go() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("3s"), Ok(3_000_000_000));
        assert_eq!(
            parse_duration("1h43m"),
            Ok((3600 + 43 * 60) * 1_000_000_000)
        );
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("-2m"), Ok(-120_000_000_000));
        assert_eq!(parse_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_duration("2µs"), Ok(2_000));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(
            parse_duration("1h43").unwrap_err().to_string(),
            "time: missing unit in duration \"1h43\""
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("3x").is_err());
        assert!(parse_duration("2006-01-02").is_err());
        assert!(parse_duration("9999999999h").is_err());
    }

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a \"b\"\n\\"), "\"a \\\"b\\\"\\n\\\\\"");
        assert_eq!(quote("\x1b[31m"), "\"\\x1b[31m\"");
        assert_eq!(quote("ünïcode"), "\"ünïcode\"");
    }

    #[test]
    fn escapes_html_in_json() {
        assert_eq!(html_escape_json(r#"{"a":"x"}"#), r#"{"a":"x"}"#);
        assert_eq!(
            html_escape_json(r#"{"url":"/?a=1&b=<2>"}"#),
            r#"{"url":"/?a=1\u0026b=\u003c2\u003e"}"#
        );
        let mut s = String::new();
        push_json_string(&mut s, "a\"<\u{1}");
        assert_eq!(s, r#""a\"\u003c\u0001""#);
    }
}
