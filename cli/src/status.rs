//! `weir status`: is the server healthy, and how full is its flow buffer.
//!
//! Like `hubble status`, it first asks `grpc.health.v1.Health/Check` about
//! `hubble.server.Observer` and fails with "not healthy" unless the answer
//! is SERVING, then prints `ServerStatus`.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use weir_proto::observer::{
    ServerStatusRequest, ServerStatusResponse, observer_client::ObserverClient,
};

use crate::client::ServerArgs;
use crate::error::{CliError, rpc_message};
use crate::gofmt::{self, group_digits};
use crate::observe::printer::to_json;
use crate::tabwriter::TabWriter;

/// The health-checked service name.
pub const OBSERVER_SERVICE: &str = "hubble.server.Observer";

/// `weir status [flags]`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Output format: compact, dict (KEY: VALUE), json (protojson) or table
    #[arg(
        short = 'o',
        long,
        value_name = "FORMAT",
        default_value = "compact",
        help_heading = "Formatting"
    )]
    pub output: String,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Compact,
    Dict,
    Json,
    Table,
}

impl StatusArgs {
    pub async fn run(&self) -> Result<(), CliError> {
        let format = match self.output.as_str() {
            "compact" => Format::Compact,
            "dict" => Format::Dict,
            "json" | "JSON" | "jsonpb" => Format::Json,
            "tab" | "table" => Format::Table,
            other => return Err(CliError::usage(format!("invalid output format: {other}"))),
        };
        let addr = self.server.addr()?;
        let channel = self.server.connect().await?;
        let mut out = std::io::stdout().lock();

        let mut health_client = HealthClient::new(channel.clone());
        let check = health_client.check(HealthCheckRequest {
            service: OBSERVER_SERVICE.to_owned(),
        });
        let health = self.server.unary(check).await.map_err(|s| {
            CliError::runtime(format!("failed getting status: {}", rpc_message(&s)))
        })?;
        let serving = health.status == ServingStatus::Serving as i32;
        if format == Format::Compact {
            let state = if serving {
                "Ok".to_owned()
            } else {
                let name = ServingStatus::try_from(health.status).map_or_else(
                    |_| health.status.to_string(),
                    |s| s.as_str_name().to_owned(),
                );
                format!("Unavailable: {name}")
            };
            writeln!(out, "Healthcheck (via {addr}): {state}")?;
        }
        if !serving {
            return Err(CliError::runtime("not healthy"));
        }

        let mut observer = ObserverClient::new(channel);
        let status = self
            .server
            .unary(observer.server_status(ServerStatusRequest {}))
            .await
            .map_err(|s| {
                CliError::runtime(format!(
                    "failed to get hubble server status: {}",
                    rpc_message(&s)
                ))
            })?;
        let text = match format {
            Format::Compact => compact(&status),
            Format::Dict => dict(&status),
            Format::Json => format!("{}\n", to_json(&status)),
            Format::Table => table(&status),
        };
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(())
    }
}

/// `flows_rate` when the server reports one, as `23.46`.
fn reported_rate(s: &ServerStatusResponse) -> Option<String> {
    (s.flows_rate > 0.0).then(|| format!("{:.2}", s.flows_rate))
}

fn uptime(s: &ServerStatusResponse) -> String {
    if s.uptime_ns > i64::MAX as u64 {
        format!("{}ns", s.uptime_ns)
    } else {
        gofmt::duration(Duration::from_nanos(s.uptime_ns))
    }
}

fn optional_count(v: Option<&pbjson_types::UInt32Value>) -> String {
    v.map_or_else(|| "N/A".to_owned(), |v| v.value.to_string())
}

/// The default output of `weir status` (without the health line).
pub fn compact(s: &ServerStatusResponse) -> String {
    let mut out = String::new();
    let ratio = if s.max_flows > 0 {
        format!(" ({:.2}%)", s.num_flows as f64 / s.max_flows as f64 * 100.0)
    } else {
        String::new()
    };
    out.push_str(&format!(
        "Current/Max Flows: {}/{}{ratio}\n",
        group_digits(s.num_flows),
        group_digits(s.max_flows)
    ));
    let uptime_secs = s.uptime_ns as f64 / 1e9;
    let rate = reported_rate(s).unwrap_or_else(|| {
        if uptime_secs > 0.0 {
            format!("{:.2}", s.seen_flows as f64 / uptime_secs)
        } else {
            "N/A".to_owned()
        }
    });
    out.push_str(&format!("Flows/s: {rate}\n"));
    if let Some(connected) = &s.num_connected_nodes {
        let total = s
            .num_unavailable_nodes
            .as_ref()
            .map_or_else(String::new, |u| {
                format!("/{}", u64::from(u.value) + u64::from(connected.value))
            });
        out.push_str(&format!("Connected Nodes: {}{total}\n", connected.value));
    }
    if let Some(unavailable) = s.num_unavailable_nodes.as_ref().filter(|u| u.value > 0) {
        if s.unavailable_nodes.is_empty() {
            out.push_str(&format!("Unavailable Nodes: {}\n", unavailable.value));
        } else {
            let mut names: Vec<String> = s
                .unavailable_nodes
                .iter()
                .map(|n| crate::observe::printer::clean(n))
                .collect();
            names.sort();
            if unavailable.value as usize > names.len() {
                names.push(format!(
                    "and {} more...",
                    unavailable.value as usize - names.len()
                ));
            }
            out.push_str(&format!(
                "Unavailable Nodes: {}\n  - {}\n",
                unavailable.value,
                names.join("\n  - ")
            ));
        }
    }
    out.push_str(&format!(
        "Lost Events: {}\n",
        group_digits(s.num_lost_events)
    ));
    out
}

/// `-o dict`.
pub fn dict(s: &ServerStatusResponse) -> String {
    format!(
        "          NUM FLOWS: {}\n          MAX FLOWS: {}\n         SEEN FLOWS: {}\n   FLOWS PER SECOND: {}\n             UPTIME: {}\nNUM CONNECTED NODES: {}\n NUM UNAVAIL. NODES: {}\n    NUM LOST EVENTS: {}\n            VERSION: {}\n",
        group_digits(s.num_flows),
        group_digits(s.max_flows),
        group_digits(s.seen_flows),
        reported_rate(s).unwrap_or_else(|| "N/A".to_owned()),
        uptime(s),
        optional_count(s.num_connected_nodes.as_ref()),
        optional_count(s.num_unavailable_nodes.as_ref()),
        group_digits(s.num_lost_events),
        crate::observe::printer::clean(&s.version),
    )
}

/// `-o table`.
pub fn table(s: &ServerStatusResponse) -> String {
    let mut tw = TabWriter::hubble();
    tw.write("NUM FLOWS\tMAX FLOWS\tSEEN FLOWS\tFLOWS PER SECOND\tUPTIME\tNUM CONNECTED NODES\tNUM UNAVAILABLE NODES\tNUM LOST EVENTS\tVERSION\n");
    tw.write(&format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
        group_digits(s.num_flows),
        group_digits(s.max_flows),
        group_digits(s.seen_flows),
        reported_rate(s).unwrap_or_else(|| "N/A".to_owned()),
        uptime(s),
        optional_count(s.num_connected_nodes.as_ref()),
        optional_count(s.num_unavailable_nodes.as_ref()),
        group_digits(s.num_lost_events),
        crate::observe::printer::clean(&s.version),
    ));
    tw.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pbjson_types::UInt32Value;

    fn agent() -> ServerStatusResponse {
        ServerStatusResponse {
            num_flows: 2031,
            max_flows: 4095,
            seen_flows: 2_348_885,
            uptime_ns: 301_515_181_665,
            version: "weir v0.1.0".into(),
            flows_rate: 23.456,
            num_lost_events: 1234,
            ..Default::default()
        }
    }

    #[test]
    fn compact_like_hubble_plus_lost_events() {
        assert_eq!(
            compact(&agent()),
            "Current/Max Flows: 2,031/4,095 (49.60%)\nFlows/s: 23.46\nLost Events: 1,234\n"
        );
        let no_rate = ServerStatusResponse {
            flows_rate: 0.0,
            ..agent()
        };
        assert!(compact(&no_rate).contains("Flows/s: 7790.27\n"));
        let empty = ServerStatusResponse::default();
        assert_eq!(
            compact(&empty),
            "Current/Max Flows: 0/0\nFlows/s: N/A\nLost Events: 0\n"
        );
    }

    #[test]
    fn compact_with_relay_nodes() {
        let relay = ServerStatusResponse {
            num_connected_nodes: Some(UInt32Value { value: 2 }),
            num_unavailable_nodes: Some(UInt32Value { value: 3 }),
            unavailable_nodes: vec!["node-b".into(), "node-a".into()],
            num_lost_events: 0,
            ..agent()
        };
        assert_eq!(
            compact(&relay),
            "Current/Max Flows: 2,031/4,095 (49.60%)\nFlows/s: 23.46\nConnected Nodes: 2/5\n\
             Unavailable Nodes: 3\n  - node-a\n  - node-b\n  - and 1 more...\nLost Events: 0\n"
        );
        let none_listed = ServerStatusResponse {
            unavailable_nodes: vec![],
            ..relay.clone()
        };
        assert!(compact(&none_listed).contains("Unavailable Nodes: 3\nLost"));
        let all_up = ServerStatusResponse {
            num_unavailable_nodes: Some(UInt32Value { value: 0 }),
            ..relay
        };
        assert!(compact(&all_up).contains("Connected Nodes: 2/2\nLost"));
    }

    #[test]
    fn dict_table_and_json() {
        assert_eq!(
            dict(&agent()),
            "          NUM FLOWS: 2,031\n          MAX FLOWS: 4,095\n         SEEN FLOWS: 2,348,885\n   FLOWS PER SECOND: 23.46\n             UPTIME: 5m1.515181665s\nNUM CONNECTED NODES: N/A\n NUM UNAVAIL. NODES: N/A\n    NUM LOST EVENTS: 1,234\n            VERSION: weir v0.1.0\n"
        );
        assert_eq!(
            table(&agent()),
            "NUM FLOWS   MAX FLOWS   SEEN FLOWS   FLOWS PER SECOND   UPTIME           NUM CONNECTED NODES   NUM UNAVAILABLE NODES   NUM LOST EVENTS   VERSION\n\
             2,031       4,095       2,348,885    23.46              5m1.515181665s   N/A                   N/A                     1,234             weir v0.1.0\n"
        );
        assert_eq!(
            to_json(&agent()),
            r#"{"num_flows":"2031","max_flows":"4095","seen_flows":"2348885","uptime_ns":"301515181665","version":"weir v0.1.0","flows_rate":23.456,"num_lost_events":"1234"}"#
        );
    }
}
