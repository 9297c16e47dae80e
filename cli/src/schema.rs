//! Field names of weir's messages, read from `weir_proto`'s compiled
//! descriptors: field masks and raw JSON filters are checked against the
//! schema before anything is sent.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message;
use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};
use serde_json::Value;

use crate::gofmt;

/// Messages and enums of the descriptor set, by fully qualified name
/// (`flow.Flow`, `flow.Verdict`).
#[derive(Default)]
struct Schema {
    messages: HashMap<String, DescriptorProto>,
    enums: HashMap<String, EnumDescriptorProto>,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let set = FileDescriptorSet::decode(weir_proto::FILE_DESCRIPTOR_SET)
            .expect("weir-proto embeds a valid FileDescriptorSet");
        let mut all = Schema::default();
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for e in file.enum_type {
                all.enums.insert(format!("{package}.{}", e.name()), e);
            }
            for msg in file.message_type {
                collect(&package, msg, &mut all);
            }
        }
        all
    })
}

fn messages() -> &'static HashMap<String, DescriptorProto> {
    &schema().messages
}

fn collect(prefix: &str, msg: DescriptorProto, all: &mut Schema) {
    let name = format!("{prefix}.{}", msg.name());
    for nested in &msg.nested_type {
        collect(&name, nested.clone(), all);
    }
    for e in &msg.enum_type {
        all.enums.insert(format!("{name}.{}", e.name()), e.clone());
    }
    all.messages.insert(name, msg);
}

/// A field of a message: its proto name and, for message fields, the
/// fully qualified name of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub message: Option<String>,
}

/// Looks up a field of `message` by its proto name or its JSON
/// (lowerCamelCase) name.
pub fn field(message: &str, name: &str) -> Option<Field> {
    let msg = messages().get(message)?;
    msg.field
        .iter()
        .find(|f| f.name() == name || f.json_name.as_deref() == Some(name))
        .map(|f| Field {
            name: f.name().to_owned(),
            message: (f.r#type() == Type::Message)
                .then(|| f.type_name().trim_start_matches('.').to_owned()),
        })
}

/// Checks a field mask path such as `source.identity` against `message`.
pub fn valid_path(message: &str, path: &str) -> bool {
    let mut current = message.to_owned();
    let mut segments = path.split('.').peekable();
    while let Some(seg) = segments.next() {
        let Some(f) = field(&current, seg).filter(|f| f.name == seg) else {
            return false;
        };
        match (f.message, segments.peek()) {
            (Some(m), Some(_)) => current = m,
            (None, Some(_)) => return false,
            (_, None) => {}
        }
    }
    !path.is_empty()
}

/// The first key of `value` (recursively) that is not a field of
/// `message`, as a dotted path. Keys of well-known types are not checked.
pub fn unknown_json_field(message: &str, value: &Value) -> Option<String> {
    let obj = value.as_object()?;
    for (key, v) in obj {
        let Some(f) = field(message, key) else {
            return Some(key.clone());
        };
        let Some(sub) = f.message.filter(|m| !m.starts_with("google.protobuf.")) else {
            continue;
        };
        let children: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for child in children {
            if let Some(bad) = unknown_json_field(&sub, child) {
                return Some(format!("{key}.{bad}"));
            }
        }
    }
    None
}

/// Re-encodes the protojson `value` of a `message` the way Go's
/// `encoding/json` encodes the generated Go struct: fields in declaration
/// order, enums as numbers, 64-bit integers as numbers, HTML-safe strings.
/// Hubble prints raw filters (`--print-raw-filters`) and reads `--allowlist`
/// in this encoding.
pub fn go_json(message: &str, value: &Value) -> String {
    let mut out = String::new();
    write_go_message(message, value, &mut out);
    out
}

fn write_go_message(message: &str, value: &Value, out: &mut String) {
    let (Some(desc), Some(obj)) = (messages().get(message), value.as_object()) else {
        write_go_value(value, out);
        return;
    };
    out.push('{');
    let mut first = true;
    for f in &desc.field {
        let Some(v) = obj
            .get(f.name())
            .or_else(|| f.json_name.as_deref().and_then(|j| obj.get(j)))
        else {
            continue;
        };
        if !first {
            out.push(',');
        }
        first = false;
        gofmt::push_json_string(out, f.name());
        out.push(':');
        let write_one = |item: &Value, out: &mut String| match f.r#type() {
            Type::Message => write_go_message(f.type_name().trim_start_matches('.'), item, out),
            Type::Enum => match item.as_str().and_then(|n| enum_number(f.type_name(), n)) {
                Some(n) => out.push_str(&n.to_string()),
                None => write_go_value(item, out),
            },
            Type::Int64 | Type::Uint64 | Type::Sint64 | Type::Fixed64 | Type::Sfixed64 => {
                match item.as_str() {
                    Some(s) if s.parse::<i128>().is_ok() => out.push_str(s),
                    _ => write_go_value(item, out),
                }
            }
            _ => write_go_value(item, out),
        };
        match v {
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_one(item, out);
                }
                out.push(']');
            }
            item => write_one(item, out),
        }
    }
    out.push('}');
}

fn enum_number(type_name: &str, name: &str) -> Option<i32> {
    let e = schema().enums.get(type_name.trim_start_matches('.'))?;
    e.value
        .iter()
        .find(|v| v.name() == name)
        .map(|v| v.number())
}

fn write_go_value(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => gofmt::push_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                gofmt::push_json_string(out, k);
                out.push(':');
                write_go_value(v, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_field_mask_paths() {
        for ok in [
            "time",
            "source.identity",
            "IP",
            "l4",
            "Summary",
            "is_reply",
            "egress_denied_by",
        ] {
            assert!(valid_path("flow.Flow", ok), "{ok}");
        }
        for bad in [
            "",
            "invalid-field",
            "source.nope",
            "time.seconds.x",
            "ip",
            "summary",
            "source.",
        ] {
            assert!(!valid_path("flow.Flow", bad), "{bad}");
        }
    }

    #[test]
    fn encodes_like_go_encoding_json() {
        let v = serde_json::json!({
            "event_type": [{"type": 1}],
            "verdict": ["DROPPED", "AUDIT"],
            "source_pod": ["kube-system/"],
            "ip_trace_id": ["42"],
            "http_path": ["/a&b"],
        });
        assert_eq!(
            go_json("flow.FlowFilter", &v),
            r#"{"source_pod":["kube-system/"],"verdict":[2,4],"event_type":[{"type":1}],"http_path":["/a\u0026b"],"ip_trace_id":[42]}"#
        );
    }

    #[test]
    fn finds_unknown_json_keys() {
        let v: serde_json::Value = serde_json::json!({
            "source_pod": ["a/"], "eventType": [{"type": 1}], "tcp_flags": [{"SYN": true}]
        });
        assert_eq!(unknown_json_field("flow.FlowFilter", &v), None);
        let v = serde_json::json!({"invalid": ["filters"]});
        assert_eq!(
            unknown_json_field("flow.FlowFilter", &v).as_deref(),
            Some("invalid")
        );
        let v = serde_json::json!({"event_type": [{"typ": 1}]});
        assert_eq!(
            unknown_json_field("flow.FlowFilter", &v).as_deref(),
            Some("event_type.typ")
        );
    }
}
