//! Time formats: printing flow timestamps (`--time-format`) and reading
//! `--since`/`--until`.
//!
//! Like Hubble, weir prints every timestamp in UTC. The format names and
//! layouts are Hubble's; a name weir does not know falls back to
//! `StampMilli`, as in Hubble.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use weir_proto::google::protobuf::Timestamp;

use crate::gofmt;

/// A named timestamp layout (`--time-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeFormat {
    /// `Jan _2 15:04:05.000`, e.g. `Nov 23 17:30:01.123`.
    #[default]
    StampMilli,
    /// `2006-01-02`.
    YearMonthDay,
    /// `2006-01-02T15Z07:00`.
    YearMonthDayHour,
    /// `2006-01-02T15:04Z07:00`.
    YearMonthDayHourMinute,
    /// `2006-01-02T15:04:05Z07:00`.
    Rfc3339,
    /// RFC 3339 with up to 3 fractional digits, trailing zeros dropped.
    Rfc3339Milli,
    /// RFC 3339 with up to 6 fractional digits, trailing zeros dropped.
    Rfc3339Micro,
    /// RFC 3339 with up to 9 fractional digits, trailing zeros dropped.
    Rfc3339Nano,
    /// `Mon, 02 Jan 2006 15:04:05 -0700`.
    Rfc1123Z,
}

impl TimeFormat {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [TimeFormat; 9] = [
        TimeFormat::StampMilli,
        TimeFormat::YearMonthDay,
        TimeFormat::YearMonthDayHour,
        TimeFormat::YearMonthDayHourMinute,
        TimeFormat::Rfc3339,
        TimeFormat::Rfc3339Milli,
        TimeFormat::Rfc3339Micro,
        TimeFormat::Rfc3339Nano,
        TimeFormat::Rfc1123Z,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TimeFormat::StampMilli => "StampMilli",
            TimeFormat::YearMonthDay => "YearMonthDay",
            TimeFormat::YearMonthDayHour => "YearMonthDayHour",
            TimeFormat::YearMonthDayHourMinute => "YearMonthDayHourMinute",
            TimeFormat::Rfc3339 => "RFC3339",
            TimeFormat::Rfc3339Milli => "RFC3339Milli",
            TimeFormat::Rfc3339Micro => "RFC3339Micro",
            TimeFormat::Rfc3339Nano => "RFC3339Nano",
            TimeFormat::Rfc1123Z => "RFC1123Z",
        }
    }

    /// Go's reference layout for this format, as shown in `--help`.
    pub fn layout(self) -> &'static str {
        match self {
            TimeFormat::StampMilli => "Jan _2 15:04:05.000",
            TimeFormat::YearMonthDay => "2006-01-02",
            TimeFormat::YearMonthDayHour => "2006-01-02T15Z07:00",
            TimeFormat::YearMonthDayHourMinute => "2006-01-02T15:04Z07:00",
            TimeFormat::Rfc3339 => "2006-01-02T15:04:05Z07:00",
            TimeFormat::Rfc3339Milli => "2006-01-02T15:04:05.999Z07:00",
            TimeFormat::Rfc3339Micro => "2006-01-02T15:04:05.999999Z07:00",
            TimeFormat::Rfc3339Nano => "2006-01-02T15:04:05.999999999Z07:00",
            TimeFormat::Rfc1123Z => "Mon, 02 Jan 2006 15:04:05 -0700",
        }
    }

    /// Looks a name up case-insensitively; unknown names mean `StampMilli`.
    pub fn from_name(name: &str) -> TimeFormat {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
            .unwrap_or_default()
    }

    /// Formats `ts` in UTC; `N/A` when it is missing or out of range.
    pub fn format(self, ts: Option<&Timestamp>) -> String {
        let Some(t) = ts.and_then(to_utc) else {
            return "N/A".to_owned();
        };
        let frac = |digits: usize| trimmed_fraction(t.timestamp_subsec_nanos(), digits);
        match self {
            TimeFormat::StampMilli => t.format("%b %e %H:%M:%S%.3f").to_string(),
            TimeFormat::YearMonthDay => t.format("%Y-%m-%d").to_string(),
            TimeFormat::YearMonthDayHour => t.format("%Y-%m-%dT%HZ").to_string(),
            TimeFormat::YearMonthDayHourMinute => t.format("%Y-%m-%dT%H:%MZ").to_string(),
            TimeFormat::Rfc3339 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            TimeFormat::Rfc3339Milli => format!("{}{}Z", t.format("%Y-%m-%dT%H:%M:%S"), frac(3)),
            TimeFormat::Rfc3339Micro => format!("{}{}Z", t.format("%Y-%m-%dT%H:%M:%S"), frac(6)),
            TimeFormat::Rfc3339Nano => format!("{}{}Z", t.format("%Y-%m-%dT%H:%M:%S"), frac(9)),
            TimeFormat::Rfc1123Z => t.format("%a, %d %b %Y %H:%M:%S +0000").to_string(),
        }
    }
}

/// `.123` for a `.999`-style Go layout: at most `digits` digits, trailing
/// zeros removed, nothing at all when the fraction is zero.
fn trimmed_fraction(nanos: u32, digits: usize) -> String {
    let scaled = nanos / 10u32.pow(9 - digits as u32);
    if scaled == 0 {
        return String::new();
    }
    let s = format!("{scaled:0digits$}");
    format!(".{}", s.trim_end_matches('0'))
}

/// A valid protobuf timestamp as a UTC date-time.
fn to_utc(ts: &Timestamp) -> Option<DateTime<Utc>> {
    const MIN_SECONDS: i64 = -62_135_596_800;
    const MAX_SECONDS: i64 = 253_402_300_799;
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&ts.seconds) || !(0..1_000_000_000).contains(&ts.nanos)
    {
        return None;
    }
    DateTime::from_timestamp(ts.seconds, ts.nanos as u32)
}

/// An unparseable `--since`/`--until` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to convert {0} to time")]
pub struct TimeParseError(pub String);

/// Reads a `--since`/`--until` value: a Go duration before `now` (`3s`,
/// `4m`, `1h30m`), or an absolute time in one of Hubble's accepted layouts
/// (`2006-01-02`, `2006-01-02T15Z07:00`, `2006-01-02T15:04Z07:00`, RFC 3339
/// with any fraction, RFC 1123 with a numeric zone). Times without a zone
/// are UTC.
pub fn parse_time(input: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, TimeParseError> {
    if let Ok(nanos) = gofmt::parse_duration(input) {
        let delta = chrono::Duration::nanoseconds(nanos as i64);
        return now
            .checked_sub_signed(delta)
            .ok_or_else(|| TimeParseError(input.to_owned()));
    }
    parse_absolute(input).ok_or_else(|| TimeParseError(input.to_owned()))
}

fn parse_absolute(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && s.len() == 10
    {
        return Some(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%a, %d %b %Y %H:%M:%S %z") {
        return Some(t.with_timezone(&Utc));
    }
    // Hour or hour:minute precision, followed by `Z` or a `±hh:mm` offset.
    let (local, zone) = split_zone(s)?;
    let naive = NaiveDateTime::parse_from_str(&format!("{local}:00"), "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(&format!("{local}:00:00"), "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    let time = zone.from_local_datetime(&naive).single()?;
    Some(time.with_timezone(&Utc))
}

/// Splits `2019-06-30T18:45+02:00` into the local part and its offset.
fn split_zone(s: &str) -> Option<(&str, FixedOffset)> {
    if let Some(local) = s.strip_suffix('Z') {
        return Some((local, FixedOffset::east_opt(0)?));
    }
    if s.len() < 6 {
        return None;
    }
    let (local, zone) = s.split_at(s.len() - 6);
    let sign = match zone.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hh, mm) = zone[1..].split_once(':')?;
    if hh.len() != 2 || mm.len() != 2 {
        return None;
    }
    let secs = hh.parse::<i32>().ok()? * 3600 + mm.parse::<i32>().ok()? * 60;
    Some((local, FixedOffset::east_opt(sign * secs)?))
}

/// A UTC date-time as a protobuf timestamp.
pub fn to_timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn formats_every_layout_in_utc() {
        let t = ts(1_530_984_600, 123_000_000);
        let got: Vec<String> = TimeFormat::ALL.iter().map(|f| f.format(Some(&t))).collect();
        assert_eq!(
            got,
            [
                "Jul  7 17:30:00.123",
                "2018-07-07",
                "2018-07-07T17Z",
                "2018-07-07T17:30Z",
                "2018-07-07T17:30:00Z",
                "2018-07-07T17:30:00.123Z",
                "2018-07-07T17:30:00.123Z",
                "2018-07-07T17:30:00.123Z",
                "Sat, 07 Jul 2018 17:30:00 +0000",
            ]
        );
        assert_eq!(
            TimeFormat::StampMilli.format(Some(&ts(0, 0))),
            "Jan  1 00:00:00.000"
        );
        assert_eq!(
            TimeFormat::Rfc3339Nano.format(Some(&ts(0, 0))),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            TimeFormat::Rfc3339Nano.format(Some(&ts(0, 567_800_000))),
            "1970-01-01T00:00:00.5678Z"
        );
        assert_eq!(TimeFormat::StampMilli.format(None), "N/A");
        assert_eq!(TimeFormat::StampMilli.format(Some(&ts(-1, -1))), "N/A");
    }

    #[test]
    fn looks_names_up_case_insensitively() {
        assert_eq!(
            TimeFormat::from_name("rfc3339nano"),
            TimeFormat::Rfc3339Nano
        );
        assert_eq!(TimeFormat::from_name("RFC1123Z"), TimeFormat::Rfc1123Z);
        assert_eq!(TimeFormat::from_name("nonsense"), TimeFormat::StampMilli);
    }

    #[test]
    fn parses_relative_and_absolute_times() {
        let now = Utc.with_ymd_and_hms(2019, 7, 1, 14, 0, 0).unwrap();
        let parse = |s: &str| parse_time(s, now).map(|t| t.to_rfc3339());
        assert_eq!(parse("10s").unwrap(), "2019-07-01T13:59:50+00:00");
        assert_eq!(parse("5m").unwrap(), "2019-07-01T13:55:00+00:00");
        assert_eq!(parse("20h").unwrap(), "2019-06-30T18:00:00+00:00");
        assert_eq!(
            parse("2019-06-30T18:00:00Z").unwrap(),
            "2019-06-30T18:00:00+00:00"
        );
        assert_eq!(parse("2019-06-30").unwrap(), "2019-06-30T00:00:00+00:00");
        assert_eq!(
            parse("2019-06-30T18Z").unwrap(),
            "2019-06-30T18:00:00+00:00"
        );
        assert_eq!(
            parse("2019-06-30T18:45Z").unwrap(),
            "2019-06-30T18:45:00+00:00"
        );
        assert_eq!(
            parse("2019-06-30T18+02:00").unwrap(),
            "2019-06-30T16:00:00+00:00"
        );
        assert_eq!(
            parse("2019-06-30T18:45+02:00").unwrap(),
            "2019-06-30T16:45:00+00:00"
        );
        assert_eq!(
            parse("2019-06-30T18:45:01.5-01:00").unwrap(),
            "2019-06-30T19:45:01.500+00:00"
        );
        assert_eq!(
            parse("Sun, 30 Jun 2019 18:00:00 +0200").unwrap(),
            "2019-06-30T16:00:00+00:00"
        );
        assert_eq!(
            parse("yesterday").unwrap_err().to_string(),
            "failed to convert yesterday to time"
        );
        assert!(parse("1h43").is_err());
        assert!(parse("2019-06-30T18").is_err());
    }
}
