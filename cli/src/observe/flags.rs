//! The flags of `weir observe`, grouped as in `hubble observe --help`.
//!
//! Filter flags are order-sensitive (`--not` negates the flag after it), so
//! [`FilterArgs`] implements clap's traits by hand and keeps every filter
//! flag occurrence with its position on the command line.

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use crate::client::ServerArgs;

/// Everything `weir observe` accepts.
#[derive(Debug, Clone, Args)]
pub struct ObserveArgs {
    #[command(flatten)]
    pub selectors: SelectorArgs,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub raw: RawFilterArgs,
    #[command(flatten)]
    pub format: FormatArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub other: OtherArgs,
}

/// Which flows to ask for.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Selectors")]
pub struct SelectorArgs {
    /// Get all flows stored in the server's buffer. Best combined with filters
    #[arg(long)]
    pub all: bool,

    /// Get the first N flows stored in the server's buffer (per node through a
    /// relay)
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub first: u64,

    /// Keep the stream open and print new flows as they arrive
    #[arg(short = 'f', long)]
    pub follow: bool,

    /// Get the last N flows stored in the server's buffer (per node through a
    /// relay) [default: 20]
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub last: u64,

    /// Only flows since this time: a duration before now (3s, 4m, 1h30m) or a
    /// time as 2006-01-02, 2006-01-02T15Z07:00, 2006-01-02T15:04Z07:00, RFC 3339
    /// (2006-01-02T15:04:05.999999999Z07:00) or RFC 1123Z (Mon, 02 Jan 2006
    /// 15:04:05 -0700)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only flows until this time, in the formats of --since. Ignored with
    /// --follow
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

/// JSON-encoded `FlowFilter`s, added as they are.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Raw filters")]
pub struct RawFilterArgs {
    /// Add JSON-encoded FlowFilters to the allowlist (whitelist); one or more
    /// per value
    #[arg(long, value_name = "JSON")]
    pub allowlist: Vec<String>,

    /// Add JSON-encoded FlowFilters to the denylist (blacklist); one or more per
    /// value
    #[arg(long, value_name = "JSON")]
    pub denylist: Vec<String>,
}

/// How to print.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Formatting")]
pub struct FormatArgs {
    /// Output format: compact (one line per flow), dict (KEY: VALUE blocks),
    /// json or jsonpb (each GetFlowsResponse as protojson), table or tab
    /// (aligned columns; not with --follow)
    #[arg(short = 'o', long, value_name = "FORMAT", default_value = "compact")]
    pub output: String,

    /// Timestamp format of compact, dict and table output (always UTC):
    /// StampMilli, YearMonthDay, YearMonthDayHour, YearMonthDayHourMinute,
    /// RFC3339, RFC3339Milli, RFC3339Micro, RFC3339Nano or RFC1123Z
    #[arg(long, value_name = "FORMAT", default_value = "StampMilli")]
    pub time_format: String,

    /// Print the node name of each flow
    #[arg(long)]
    pub print_node_name: bool,

    /// Print the policies that allowed or denied policy verdicts
    #[arg(long)]
    pub print_policy_names: bool,

    /// Colorize compact and dict output
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,

    /// Show pod, service or DNS names instead of IP addresses when known
    #[arg(
        long,
        value_name = "BOOL",
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true"
    )]
    pub ip_translation: bool,

    /// Print addresses numerically (turns off --ip-translation)
    #[arg(long)]
    pub numeric: bool,
}

/// Everything else.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Other")]
pub struct OtherArgs {
    /// Do not print errors, warnings, lost events or node status on stderr
    #[arg(short = 's', long)]
    pub silent_errors: bool,

    /// Print the allowlist and denylist that would be sent, then exit
    #[arg(long)]
    pub print_raw_filters: bool,

    /// Read flows (jsonpb lines, as printed by -o jsonpb) from this file
    /// instead of a server (--server and --follow are ignored); - reads
    /// standard input
    #[arg(long, value_name = "FILE")]
    pub input_file: Option<String>,

    /// Only request these Flow fields (comma-separated paths such as
    /// time,source.identity); json and jsonpb output only
    #[arg(long, value_name = "PATHS", value_delimiter = ',')]
    pub field_mask: Vec<String>,

    /// With compact, dict and table output, request only the fields they print
    #[arg(
        long,
        value_name = "BOOL",
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true"
    )]
    pub use_default_field_masks: bool,
}

/// One filter flag: its long name, short name, the value assumed when it is
/// given without one, and its help.
#[derive(Debug, Clone, Copy)]
pub struct FilterFlag {
    pub name: &'static str,
    pub short: Option<char>,
    pub missing: Option<&'static str>,
    pub help: &'static str,
}

const fn flag(name: &'static str, help: &'static str) -> FilterFlag {
    FilterFlag {
        name,
        short: None,
        missing: None,
        help,
    }
}

/// Every filter flag, in the alphabetical order of `--help`.
pub const FILTER_FLAGS: &[FilterFlag] = &[
    FilterFlag {
        short: Some('A'),
        missing: Some("true"),
        ..flag("all-namespaces", "Show flows in any Kubernetes namespace")
    },
    flag("cel-expression", "Show flows matching this CEL expression"),
    flag(
        "cluster",
        "Show flows whose source or destination is in a cluster matching this name",
    ),
    flag(
        "drop-reason-desc",
        "Show flows dropped for this reason (e.g. POLICY_DENIED, POLICY_DENY)",
    ),
    FilterFlag {
        missing: Some("true"),
        ..flag("encrypted", "Show only encrypted flows")
    },
    flag(
        "fqdn",
        "Show flows from or to this DNS name (e.g. \"*.example.com\")",
    ),
    FilterFlag {
        missing: Some("true"),
        ..flag(
            "from-all-namespaces",
            "Show flows from any Kubernetes namespace",
        )
    },
    flag("from-cluster", "Show flows from endpoints in this cluster"),
    flag(
        "from-fqdn",
        "Show flows from this DNS name (e.g. \"*.example.com\")",
    ),
    flag(
        "from-identity",
        "Show flows from this security identity (a number or a reserved name such as world or host)",
    ),
    flag(
        "from-ip",
        "Show flows from this IP address or CIDR (e.g. 10.0.0.1, 10.0.0.0/24)",
    ),
    flag(
        "from-label",
        "Show flows from endpoints matching this label selector (e.g. app=web, reserved:world)",
    ),
    flag(
        "from-namespace",
        "Show flows from this Kubernetes namespace",
    ),
    flag(
        "from-pod",
        "Show flows from pods with this name prefix ([namespace/]name; namespace default)",
    ),
    flag("from-port", "Show flows from this port"),
    flag(
        "from-service",
        "Show flows from this service ([namespace/]name; namespace default)",
    ),
    flag(
        "from-workload",
        "Show flows from this workload ([kind/]name)",
    ),
    flag(
        "http-header",
        "Show HTTP flows with this header (name:value)",
    ),
    flag(
        "http-method",
        "Show HTTP flows with this method (e.g. get, post)",
    ),
    flag(
        "http-path",
        "Show HTTP flows whose path matches this regular expression (e.g. \"/page/\\d+\")",
    ),
    flag(
        "http-status",
        "Show HTTP flows with this status code or prefix (e.g. 404, 5+)",
    ),
    flag(
        "http-url",
        "Show HTTP flows whose URL matches this regular expression",
    ),
    flag(
        "identity",
        "Show flows from or to this security identity (a number or a reserved name)",
    ),
    flag(
        "interface",
        "Show flows observed at this network interface (e.g. eth0)",
    ),
    flag("ip", "Show flows from or to this IP address or CIDR"),
    flag("ip-trace-id", "Show flows with this IP trace ID"),
    flag("ip-version", "Show flows of this IP version (none, v4, v6)"),
    FilterFlag {
        short: Some('4'),
        missing: Some("v4"),
        ..flag("ipv4", "Show only IPv4 flows")
    },
    FilterFlag {
        short: Some('6'),
        missing: Some("v6"),
        ..flag("ipv6", "Show only IPv6 flows")
    },
    FilterFlag {
        short: Some('l'),
        ..flag(
            "label",
            "Show flows from or to endpoints matching this label selector",
        )
    },
    FilterFlag {
        short: Some('n'),
        ..flag(
            "namespace",
            "Show flows from or to this Kubernetes namespace",
        )
    },
    flag(
        "node-label",
        "Show flows observed on nodes matching this label selector",
    ),
    flag(
        "node-name",
        "Show flows observed on nodes matching this name pattern (e.g. \"k8s*\", \"cluster/*\")",
    ),
    FilterFlag {
        missing: Some("true"),
        ..flag(
            "not",
            "Negate the next filter flag: put it in the denylist (e.g. --not --from-ip 10.0.0.1)",
        )
    },
    flag(
        "pod",
        "Show flows from or to pods with this name prefix ([namespace/]name; namespace default)",
    ),
    flag("port", "Show flows from or to this port"),
    flag(
        "protocol",
        "Show flows of this L4 or L7 protocol (e.g. tcp, udp, icmp, http, dns)",
    ),
    flag(
        "service",
        "Show flows from or to this service ([namespace/]name; namespace default)",
    ),
    flag(
        "snat-ip",
        "Show flows source-NATed to this IP address or CIDR",
    ),
    flag(
        "tcp-flags",
        "Show TCP flows with these flags set (e.g. syn, syn,ack)",
    ),
    FilterFlag {
        missing: Some("true"),
        ..flag(
            "to-all-namespaces",
            "Show flows to any Kubernetes namespace",
        )
    },
    flag("to-cluster", "Show flows to endpoints in this cluster"),
    flag("to-fqdn", "Show flows to this DNS name"),
    flag(
        "to-identity",
        "Show flows to this security identity (a number or a reserved name)",
    ),
    flag("to-ip", "Show flows to this IP address or CIDR"),
    flag(
        "to-label",
        "Show flows to endpoints matching this label selector",
    ),
    flag("to-namespace", "Show flows to this Kubernetes namespace"),
    flag(
        "to-pod",
        "Show flows to pods with this name prefix ([namespace/]name; namespace default)",
    ),
    flag("to-port", "Show flows to this port"),
    flag(
        "to-service",
        "Show flows to this service ([namespace/]name; namespace default)",
    ),
    flag("to-workload", "Show flows to this workload ([kind/]name)"),
    flag("trace-id", "Show flows with this trace ID"),
    flag(
        "traffic-direction",
        "Show flows in this direction (ingress or egress)",
    ),
    FilterFlag {
        short: Some('t'),
        ..flag(
            "type",
            "Show events of this type, TYPE[:SUBTYPE]: capture, drop, l7, policy-verdict, \
             trace (subtypes from-endpoint, from-host, from-network, from-overlay, \
             from-proxy, from-stack, from-crypto, to-endpoint, to-host, to-network, \
             to-overlay, to-proxy, to-stack, to-crypto), trace-sock, or a number",
        )
    },
    FilterFlag {
        missing: Some("true"),
        ..flag("unencrypted", "Show only unencrypted flows")
    },
    flag("uuid", "Show the flow with this unique identifier"),
    flag(
        "verdict",
        "Show flows with this verdict: FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED, TRANSLATED",
    ),
    flag(
        "workload",
        "Show flows from or to this workload ([kind/]name)",
    ),
];

/// The filter flags of one command line, in the order they were given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterArgs {
    /// `(flag name, value)` pairs in command-line order.
    pub ops: Vec<(&'static str, String)>,
}

impl FromArgMatches for FilterArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut this = FilterArgs::default();
        this.update_from_arg_matches(matches)?;
        Ok(this)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let mut found: Vec<(usize, &'static str, String)> = Vec::new();
        for f in FILTER_FLAGS {
            let (Some(indices), Some(values)) = (
                matches.indices_of(f.name),
                matches.get_many::<String>(f.name),
            ) else {
                continue;
            };
            found.extend(indices.zip(values).map(|(i, v)| (i, f.name, v.clone())));
        }
        found.sort_by_key(|(i, _, _)| *i);
        self.ops
            .extend(found.into_iter().map(|(_, name, value)| (name, value)));
        Ok(())
    }
}

impl Args for FilterArgs {
    fn augment_args(cmd: Command) -> Command {
        let cmd = cmd.next_help_heading("Filters");
        FILTER_FLAGS.iter().fold(cmd, |cmd, f| {
            let mut arg = Arg::new(f.name)
                .long(f.name)
                .help(f.help)
                .value_name("FILTER")
                .action(ArgAction::Append);
            if let Some(short) = f.short {
                arg = arg.short(short);
            }
            if let Some(missing) = f.missing {
                arg = arg
                    .num_args(0..=1)
                    .require_equals(true)
                    .default_missing_value(missing)
                    .value_name("VALUE");
            }
            cmd.arg(arg)
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        filters: FilterArgs,
    }

    fn ops(args: &[&str]) -> Vec<(&'static str, String)> {
        let argv = std::iter::once("t").chain(args.iter().copied());
        T::try_parse_from(argv).unwrap().filters.ops
    }

    #[test]
    fn keeps_command_line_order_across_flags() {
        let got = ops(&[
            "--from-ip",
            "1.2.3.4",
            "--not",
            "--to-ip",
            "5.5.5.5",
            "-t",
            "drop",
            "--from-ip",
            "6.6.6.6",
        ]);
        let want: Vec<(&str, String)> = vec![
            ("from-ip", "1.2.3.4".into()),
            ("not", "true".into()),
            ("to-ip", "5.5.5.5".into()),
            ("type", "drop".into()),
            ("from-ip", "6.6.6.6".into()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn optional_values_take_their_default() {
        assert_eq!(
            ops(&["-A", "--not", "-4", "--ipv6=v6", "--encrypted"]),
            vec![
                ("all-namespaces", "true".to_owned()),
                ("not", "true".to_owned()),
                ("ipv4", "v4".to_owned()),
                ("ipv6", "v6".to_owned()),
                ("encrypted", "true".to_owned()),
            ]
        );
    }

    #[test]
    fn short_flags_work() {
        assert_eq!(
            ops(&[
                "-n",
                "kube-system",
                "-l",
                "app=x",
                "-t",
                "trace:to-endpoint"
            ]),
            vec![
                ("namespace", "kube-system".to_owned()),
                ("label", "app=x".to_owned()),
                ("type", "trace:to-endpoint".to_owned()),
            ]
        );
    }
}
