//! Checking the flags of `weir observe` and building its `GetFlowsRequest`,
//! in the order and with the messages of `hubble observe`.

use chrono::{DateTime, Utc};
use weir_proto::google::protobuf::FieldMask;
use weir_proto::observer::GetFlowsRequest;

use super::filters::FilterBuilder;
use super::flags::ObserveArgs;
use super::raw;
use crate::error::CliError;
use crate::schema;
use crate::timefmt::{self, TimeFormat};

/// Flows printed by a plain `weir observe`.
pub const DEFAULT_LAST: u64 = 20;

/// The Flow fields compact, dict and table output print: Hubble's default
/// field mask plus the fields of policy-verdict lines and policy names
/// (traffic_direction, policy_match_type, *_allowed_by, *_denied_by), which
/// Hubble's mask left out until cilium/cilium#46672.
pub const DEFAULT_FIELD_MASK: &[&str] = &[
    "time",
    "verdict",
    "ethernet",
    "IP",
    "l4",
    "source.identity",
    "source.namespace",
    "source.pod_name",
    "destination.identity",
    "destination.namespace",
    "destination.pod_name",
    "Type",
    "node_name",
    "l7",
    "event_type",
    "source_service",
    "destination_service",
    "is_reply",
    "Summary",
    "ip_trace_id",
    "traffic_direction",
    "policy_match_type",
    "ingress_allowed_by",
    "ingress_denied_by",
    "egress_allowed_by",
    "egress_denied_by",
];

/// How flows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Compact,
    Dict,
    /// `json` and `jsonpb`: each response as one line of protojson.
    JsonPb,
    Table,
}

impl Output {
    /// Reads `-o`; `json` is an alias of `jsonpb`, `tab` of `table`.
    pub fn parse(value: &str) -> Result<Output, CliError> {
        match value {
            "compact" => Ok(Output::Compact),
            "dict" => Ok(Output::Dict),
            "json" | "JSON" | "jsonpb" => Ok(Output::JsonPb),
            "tab" | "table" => Ok(Output::Table),
            other => Err(CliError::usage(format!("invalid output format: {other}"))),
        }
    }
}

/// A checked `weir observe` invocation.
#[derive(Debug, Clone)]
pub struct Plan {
    pub request: GetFlowsRequest,
    pub output: Output,
    pub time_format: TimeFormat,
}

/// Checks the flags and builds the request. `now` anchors relative
/// `--since`/`--until` values.
pub fn plan(args: &ObserveArgs, now: DateTime<Utc>) -> Result<Plan, CliError> {
    let filters = FilterBuilder::build(args.filters.ops.iter().map(|(f, v)| (*f, v.as_str())))
        .map_err(|e| CliError::usage(e.0))?;

    let output = Output::parse(&args.format.output)?;
    let sel = &args.selectors;
    if output == Output::Table && sel.follow {
        return Err(CliError::usage(
            "table output format is not compatible with follow mode",
        ));
    }
    let mut field_mask = args.other.field_mask.clone();
    if output != Output::JsonPb {
        if !field_mask.is_empty() {
            return Err(CliError::usage(format!(
                "{} output format is not compatible with custom field mask",
                args.format.output
            )));
        }
        if args.other.use_default_field_masks {
            field_mask = DEFAULT_FIELD_MASK.iter().map(|s| (*s).to_owned()).collect();
        }
    }

    let first = sel.first > 0;
    let last = sel.last > 0;
    if first && last {
        return Err(CliError::usage("cannot set both --first and --last"));
    }
    if first && sel.all {
        return Err(CliError::usage("cannot set both --first and --all"));
    }
    if first && sel.follow {
        return Err(CliError::usage("cannot set both --first and --follow"));
    }
    if last && sel.all {
        return Err(CliError::usage("cannot set both --last and --all"));
    }

    let since = match &sel.since {
        Some(s) => Some(
            timefmt::parse_time(s, now)
                .map_err(|e| CliError::usage(format!("failed to parse the since time: {e}")))?,
        ),
        None => None,
    };
    // With --follow the server decides when to stop, so --until is dropped.
    let until = match &sel.until {
        Some(s) if !sel.follow => Some(
            timefmt::parse_time(s, now)
                .map_err(|e| CliError::usage(format!("failed to parse the until time: {e}")))?,
        ),
        _ => None,
    };

    let mut number = sel.last;
    if since.is_none() && until.is_none() && !first {
        if sel.all {
            number = u64::MAX;
        } else if number == 0 && !sel.follow && args.other.input_file.is_none() {
            number = DEFAULT_LAST;
        }
    }
    if first {
        number = sel.first;
    }

    let mut whitelist = filters.whitelist;
    whitelist.extend(
        raw::parse("allowlist", &args.raw.allowlist).map_err(|e| CliError::usage(e.to_string()))?,
    );
    let mut blacklist = filters.blacklist;
    blacklist.extend(
        raw::parse("denylist", &args.raw.denylist).map_err(|e| CliError::usage(e.to_string()))?,
    );

    let field_mask = if field_mask.is_empty() {
        None
    } else {
        if let Some(bad) = field_mask
            .iter()
            .find(|p| !schema::valid_path("flow.Flow", p))
        {
            return Err(CliError::usage(format!(
                "failed to construct field mask: invalid path {} for message \"flow.Flow\"",
                crate::gofmt::quote(bad)
            )));
        }
        Some(FieldMask { paths: field_mask })
    };

    let request = GetFlowsRequest {
        number,
        first,
        follow: sel.follow,
        blacklist,
        whitelist,
        since: since.map(timefmt::to_timestamp),
        until: until.map(timefmt::to_timestamp),
        field_mask,
        ..Default::default()
    };
    Ok(Plan {
        request,
        output,
        time_format: TimeFormat::from_name(&args.format.time_format),
    })
}

#[cfg(test)]
mod tests;
