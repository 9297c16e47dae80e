//! `google.protobuf.Timestamp` with the exact protojson text encoding.
//!
//! pbjson-types prints timestamps with a `+00:00` offset; protojson (and so
//! Hubble) prints UTC with a `Z` suffix and 0, 3, 6 or 9 fractional digits,
//! e.g. `2024-05-04T13:23:47.852491871Z` or `2024-05-04T13:23:47Z`. This type
//! has the same wire format and fields as every other `Timestamp` and is used
//! for all timestamp fields of the generated messages.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// A point in time: seconds and nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Message)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z; from 0001-01-01 to 9999-12-31.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second, 0 to 999,999,999.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// First and last second protojson accepts (0001-01-01 to 9999-12-31).
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

impl prost::Name for Timestamp {
    const NAME: &'static str = "Timestamp";
    const PACKAGE: &'static str = "google.protobuf";
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self {
                seconds: d.as_secs() as i64,
                nanos: d.subsec_nanos() as i32,
            },
            Err(before) => {
                let d = before.duration();
                let (seconds, nanos) = (-(d.as_secs() as i64), d.subsec_nanos() as i32);
                if nanos == 0 {
                    Self { seconds, nanos }
                } else {
                    Self {
                        seconds: seconds - 1,
                        nanos: 1_000_000_000 - nanos,
                    }
                }
            }
        }
    }
}

impl TryFrom<Timestamp> for SystemTime {
    type Error = TimestampError;

    fn try_from(t: Timestamp) -> Result<Self, TimestampError> {
        t.check()?;
        let base = if t.seconds >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(t.seconds as u64))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(t.seconds.unsigned_abs()))
        };
        base.and_then(|b| b.checked_add(Duration::from_nanos(t.nanos as u64)))
            .ok_or(TimestampError(t))
    }
}

/// A timestamp outside protojson's range or with invalid nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid google.protobuf.Timestamp (seconds {}, nanos {})", .0.seconds, .0.nanos)]
pub struct TimestampError(pub Timestamp);

impl Timestamp {
    fn check(self) -> Result<(), TimestampError> {
        let ok = (MIN_SECONDS..=MAX_SECONDS).contains(&self.seconds)
            && (0..1_000_000_000).contains(&self.nanos);
        if ok {
            Ok(())
        } else {
            Err(TimestampError(self))
        }
    }
}

impl fmt::Display for Timestamp {
    /// The protojson text, e.g. `2024-05-04T13:23:47.852Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.check().map_err(|_| fmt::Error)?;
        let t =
            DateTime::<Utc>::from_timestamp(self.seconds, self.nanos as u32).ok_or(fmt::Error)?;
        write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%S"))?;
        let n = self.nanos;
        if n == 0 {
        } else if n % 1_000_000 == 0 {
            write!(f, ".{:03}", n / 1_000_000)?;
        } else if n % 1_000 == 0 {
            write!(f, ".{:06}", n / 1_000)?;
        } else {
            write!(f, ".{n:09}")?;
        }
        f.write_str("Z")
    }
}

impl std::str::FromStr for Timestamp {
    type Err = String;

    /// RFC 3339 with any offset; the result is normalized to UTC.
    fn from_str(s: &str) -> Result<Self, String> {
        let t =
            DateTime::parse_from_rfc3339(s).map_err(|e| format!("invalid timestamp {s:?}: {e}"))?;
        let ts = Self {
            seconds: t.timestamp(),
            nanos: t.timestamp_subsec_nanos() as i32,
        };
        ts.check()
            .map_err(|e| format!("invalid timestamp {s:?}: {e}"))?;
        Ok(ts)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        self.check().map_err(serde::ser::Error::custom)?;
        ser.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                s.parse().map_err(E::custom)
            }
        }
        de.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn prints_like_protojson() {
        assert_eq!(ts(1_714_829_027, 0).to_string(), "2024-05-04T13:23:47Z");
        assert_eq!(
            ts(1_714_829_027, 852_000_000).to_string(),
            "2024-05-04T13:23:47.852Z"
        );
        assert_eq!(
            ts(1_714_829_027, 852_491_000).to_string(),
            "2024-05-04T13:23:47.852491Z"
        );
        assert_eq!(
            ts(1_714_829_027, 852_491_871).to_string(),
            "2024-05-04T13:23:47.852491871Z"
        );
        assert_eq!(ts(0, 1).to_string(), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(ts(MIN_SECONDS, 0).to_string(), "0001-01-01T00:00:00Z");
        assert_eq!(
            ts(MAX_SECONDS, 999_999_999).to_string(),
            "9999-12-31T23:59:59.999999999Z"
        );
    }

    #[test]
    fn parses_offsets_and_rejects_garbage() {
        let t: Timestamp = "2024-05-04T15:23:47.5+02:00".parse().unwrap();
        assert_eq!(t, ts(1_714_829_027, 500_000_000));
        assert!("2024-05-04".parse::<Timestamp>().is_err());
        assert!(serde_json::to_string(&ts(MAX_SECONDS + 1, 0)).is_err());
        assert!(serde_json::to_string(&ts(0, -1)).is_err());
    }

    #[test]
    fn system_time_round_trip() {
        let now = SystemTime::now();
        let back = SystemTime::try_from(Timestamp::from(now)).unwrap();
        assert_eq!(back, now);
        let before = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(Timestamp::from(before), ts(-2, 500_000_000));
        assert_eq!(SystemTime::try_from(ts(-2, 500_000_000)).unwrap(), before);
    }
}
