//! `--allowlist`/`--denylist` (JSON `FlowFilter`s) and `--print-raw-filters`.

use weir_proto::flow::FlowFilter;

use crate::schema;

/// An `--allowlist` or `--denylist` value that is not a valid `FlowFilter`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --{flag} flag: failed to decode '{value}': {reason}")]
pub struct RawFilterError {
    pub flag: &'static str,
    pub value: String,
    pub reason: String,
}

/// Parses every value of `--<flag>`; one value may hold several JSON objects
/// one after another. Accepts protojson (proto or lowerCamelCase names, enum
/// names or numbers, 64-bit integers as strings or numbers); unknown fields
/// are rejected.
pub fn parse(flag: &'static str, values: &[String]) -> Result<Vec<FlowFilter>, RawFilterError> {
    let mut out = Vec::new();
    for value in values {
        let err = |reason: String| RawFilterError {
            flag,
            value: value.clone(),
            reason,
        };
        let stream = serde_json::Deserializer::from_str(value).into_iter::<serde_json::Value>();
        for item in stream {
            let item = item.map_err(|e| err(e.to_string()))?;
            if let Some(field) = schema::unknown_json_field("flow.FlowFilter", &item) {
                return Err(err(format!(
                    "unknown field {}",
                    crate::gofmt::quote(&field)
                )));
            }
            let filter: FlowFilter =
                serde_json::from_value(item).map_err(|e| err(e.to_string()))?;
            out.push(filter);
        }
    }
    Ok(out)
}

/// The filters as `hubble observe --print-raw-filters` prints them: YAML
/// with one single-quoted JSON filter per item, in Go's JSON encoding, so the
/// output can be pasted into a Hubble or weir config.
pub fn to_yaml(whitelist: &[FlowFilter], blacklist: &[FlowFilter]) -> String {
    if whitelist.is_empty() && blacklist.is_empty() {
        return "{}\n".to_owned();
    }
    let mut out = String::new();
    for (key, list) in [("allowlist", whitelist), ("denylist", blacklist)] {
        if list.is_empty() {
            continue;
        }
        out.push_str(key);
        out.push_str(":\n");
        for filter in list {
            let value = serde_json::to_value(filter).unwrap_or_default();
            let json = schema::go_json("flow.FlowFilter", &value);
            out.push_str("    - '");
            out.push_str(&json.replace('\'', "''"));
            out.push_str("'\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_streams_of_filters_and_rejects_unknown_fields() {
        let values = vec![
            r#"{"source_label":["k8s:io.kubernetes.pod.namespace=kube-system","reserved:host"]}"#
                .to_owned(),
            r#"{"verdict":["DROPPED"]} {"verdict":[4],"ip_trace_id":[7]}"#.to_owned(),
        ];
        let got = parse("allowlist", &values).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].source_label.len(), 2);
        assert_eq!(got[1].verdict, vec![2]);
        assert_eq!(got[2].verdict, vec![4]);
        assert_eq!(got[2].ip_trace_id, vec![7]);

        let bad = vec![r#"{"invalid":["filters"]}"#.to_owned()];
        let err = parse("denylist", &bad).unwrap_err().to_string();
        assert_eq!(
            err,
            r#"invalid --denylist flag: failed to decode '{"invalid":["filters"]}': unknown field "invalid""#
        );
        assert!(parse("allowlist", &["{".to_owned()]).is_err());
    }

    #[test]
    fn prints_yaml_like_hubble() {
        let allow = FlowFilter {
            source_ip: vec!["1.2.3.4/16".into()],
            ..Default::default()
        };
        let deny = FlowFilter {
            source_port: vec!["80".into()],
            ..Default::default()
        };
        assert_eq!(
            to_yaml(&[allow], &[deny]),
            "allowlist:\n    - '{\"source_ip\":[\"1.2.3.4/16\"]}'\ndenylist:\n    - '{\"source_port\":[\"80\"]}'\n"
        );
        let quote = FlowFilter {
            http_path: vec!["it's".into()],
            ..Default::default()
        };
        assert_eq!(
            to_yaml(&[quote], &[]),
            "allowlist:\n    - '{\"http_path\":[\"it''s\"]}'\n"
        );
        assert_eq!(to_yaml(&[], &[]), "{}\n");
    }
}
