use chrono::TimeZone;
use clap::Parser;

use super::*;

#[derive(Debug, Parser)]
struct T {
    #[command(flatten)]
    args: ObserveArgs,
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2021, 3, 24, 12, 0, 0).unwrap()
}

fn plan_of(args: &[&str]) -> Result<Plan, CliError> {
    let argv = std::iter::once("weir").chain(args.iter().copied());
    let parsed = T::try_parse_from(argv).expect("clap accepts the flags");
    plan(&parsed.args, now())
}

fn request(args: &[&str]) -> GetFlowsRequest {
    plan_of(args).unwrap().request
}

fn usage_error(args: &[&str]) -> String {
    match plan_of(args) {
        Err(CliError::Usage(msg)) => msg,
        other => panic!("expected a usage error for {args:?}, got {other:?}"),
    }
}

fn default_mask() -> Option<FieldMask> {
    Some(FieldMask {
        paths: DEFAULT_FIELD_MASK.iter().map(|s| (*s).to_owned()).collect(),
    })
}

#[test]
fn plain_observe_asks_for_the_last_20_with_the_default_mask() {
    assert_eq!(
        request(&[]),
        GetFlowsRequest {
            number: 20,
            field_mask: default_mask(),
            ..Default::default()
        }
    );
    assert_eq!(
        request(&["-o", "json"]),
        GetFlowsRequest {
            number: 20,
            ..Default::default()
        }
    );
    assert_eq!(
        request(&["--use-default-field-masks=false"]),
        GetFlowsRequest {
            number: 20,
            ..Default::default()
        }
    );
}

#[test]
fn default_mask_covers_policy_verdict_fields() {
    for field in [
        "traffic_direction",
        "policy_match_type",
        "ingress_allowed_by",
        "ingress_denied_by",
        "egress_allowed_by",
        "egress_denied_by",
        "is_reply",
        "Summary",
        "event_type",
    ] {
        assert!(DEFAULT_FIELD_MASK.contains(&field), "{field}");
    }
    for path in DEFAULT_FIELD_MASK {
        assert!(schema::valid_path("flow.Flow", path), "{path}");
    }
}

#[test]
fn selectors() {
    assert_eq!(request(&["--last", "5"]).number, 5);
    let r = request(&["--first", "7"]);
    assert_eq!((r.number, r.first), (7, true));
    assert_eq!(request(&["--all"]).number, u64::MAX);
    let r = request(&["-f"]);
    assert_eq!((r.number, r.follow), (0, true));
    let r = request(&["-f", "--last", "3"]);
    assert_eq!((r.number, r.follow), (3, true));
    assert_eq!(request(&["--input-file", "x"]).number, 0);
    assert_eq!(request(&["--input-file", "x", "--last", "42"]).number, 42);
}

#[test]
fn since_and_until() {
    let r = request(&[
        "--since",
        "2021-03-23T00:00:00Z",
        "--until",
        "2021-03-24T00:00:00Z",
    ]);
    assert_eq!(r.number, 0);
    assert_eq!(r.since.map(|t| t.seconds), Some(1_616_457_600));
    assert_eq!(r.until.map(|t| t.seconds), Some(1_616_544_000));
    let r = request(&["--since", "1h"]);
    assert_eq!(r.since.map(|t| t.seconds), Some(now().timestamp() - 3600));
    // --until means nothing to a stream that never ends.
    assert_eq!(request(&["-f", "--until", "1h"]).until, None);
    assert_eq!(request(&["--since", "5m", "--last", "3"]).number, 3);
    assert_eq!(
        usage_error(&["--since", "yesterday"]),
        "failed to parse the since time: failed to convert yesterday to time"
    );
    assert_eq!(
        usage_error(&["--until", "soon"]),
        "failed to parse the until time: failed to convert soon to time"
    );
}

#[test]
fn selector_conflicts() {
    assert_eq!(
        usage_error(&["--first", "1", "--last", "1"]),
        "cannot set both --first and --last"
    );
    assert_eq!(
        usage_error(&["--first", "1", "--all"]),
        "cannot set both --first and --all"
    );
    assert_eq!(
        usage_error(&["--first", "1", "-f"]),
        "cannot set both --first and --follow"
    );
    assert_eq!(
        usage_error(&["--last", "1", "--all"]),
        "cannot set both --last and --all"
    );
}

#[test]
fn outputs_and_field_masks() {
    assert_eq!(plan_of(&["-o", "tab"]).unwrap().output, Output::Table);
    assert_eq!(plan_of(&["-o", "json"]).unwrap().output, Output::JsonPb);
    assert_eq!(usage_error(&["-o", "yaml"]), "invalid output format: yaml");
    assert_eq!(
        usage_error(&["-o", "table", "-f"]),
        "table output format is not compatible with follow mode"
    );
    assert_eq!(
        usage_error(&["--field-mask", "time,verdict"]),
        "compact output format is not compatible with custom field mask"
    );
    let r = request(&[
        "-o",
        "jsonpb",
        "--field-mask",
        "time,verdict",
        "--field-mask",
        "source.identity",
    ]);
    assert_eq!(
        r.field_mask.unwrap().paths,
        ["time", "verdict", "source.identity"]
    );
    assert_eq!(
        usage_error(&["-o", "json", "--field-mask", "time,verdict,invalid-field"]),
        "failed to construct field mask: invalid path \"invalid-field\" for message \"flow.Flow\""
    );
}

#[test]
fn filters_and_raw_filters_are_combined() {
    let r = request(&[
        "--verdict",
        "DROPPED",
        "--allowlist",
        r#"{"source_label":["reserved:host"]}"#,
        "--denylist",
        r#"{"destination_port":["53"]}"#,
        "--not",
        "--to-port",
        "80",
    ]);
    assert_eq!(r.whitelist.len(), 2);
    assert_eq!(r.whitelist[0].verdict, vec![2]);
    assert_eq!(
        r.whitelist[1].source_label,
        vec!["reserved:host".to_owned()]
    );
    assert_eq!(r.blacklist.len(), 2);
    assert_eq!(r.blacklist[0].destination_port, vec!["80".to_owned()]);
    assert_eq!(r.blacklist[1].destination_port, vec!["53".to_owned()]);
    assert!(
        usage_error(&["--allowlist", r#"{"invalid":["filters"]}"#]).starts_with(
            r#"invalid --allowlist flag: failed to decode '{"invalid":["filters"]}': "#
        )
    );
    assert_eq!(
        usage_error(&["--verdict", "nope"]),
        "invalid --verdict value: nope"
    );
}

#[test]
fn time_format_names() {
    assert_eq!(
        plan_of(&["--time-format", "rfc3339"]).unwrap().time_format,
        TimeFormat::Rfc3339
    );
    assert_eq!(plan_of(&[]).unwrap().time_format, TimeFormat::StampMilli);
}
