//! `weir list nodes` and `weir list namespaces`, like `hubble list`.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};
use weir_proto::observer::{
    GetNamespacesRequest, GetNodesRequest, Namespace, Node, observer_client::ObserverClient,
};
use weir_proto::relay::NodeState;

use crate::client::ServerArgs;
use crate::error::CliError;
use crate::gofmt;
use crate::observe::printer::clean;
use crate::tabwriter::TabWriter;

/// `weir list <object>`.
#[derive(Debug, Clone, Subcommand)]
pub enum ListCommand {
    /// List the nodes of the cluster with their state and flow counts
    #[command(visible_alias = "node")]
    Nodes(ListArgs),
    /// List the namespaces that had flows in the last hour
    Namespaces(ListArgs),
}

/// Flags of the list commands.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Output format: table, wide (more columns) or json
    #[arg(
        short = 'o',
        long,
        value_name = "FORMAT",
        default_value = "table",
        help_heading = "Formatting"
    )]
    pub output: String,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Wide,
    Json,
}

impl ListArgs {
    fn format(&self) -> Result<Format, CliError> {
        match self.output.as_str() {
            "table" => Ok(Format::Table),
            "wide" => Ok(Format::Wide),
            "json" => Ok(Format::Json),
            other => Err(CliError::usage(format!("unknown output format: {other}"))),
        }
    }
}

impl ListCommand {
    pub async fn run(&self) -> Result<(), CliError> {
        let (args, nodes) = match self {
            ListCommand::Nodes(a) => (a, true),
            ListCommand::Namespaces(a) => (a, false),
        };
        let format = args.format()?;
        let mut client = ObserverClient::new(args.server.connect().await?);
        let text = if nodes {
            let mut nodes = args
                .server
                .unary(client.get_nodes(GetNodesRequest {}))
                .await?
                .nodes;
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            match format {
                Format::Json => json_list(&nodes),
                _ => node_table(&nodes, format == Format::Wide),
            }
        } else {
            let namespaces = args
                .server
                .unary(client.get_namespaces(GetNamespacesRequest {}))
                .await?
                .namespaces;
            match format {
                Format::Json => json_list(&namespaces),
                _ => namespace_table(&namespaces, format == Format::Wide),
            }
        };
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(())
    }
}

/// A list as indented protojson (`null` when empty, as Hubble prints it).
pub fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    if items.is_empty() {
        return "null\n".to_owned();
    }
    let text =
        serde_json::to_string_pretty(items).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    format!("{}\n", gofmt::html_escape_json(&text))
}

fn state_name(state: i32) -> &'static str {
    match NodeState::try_from(state) {
        Ok(NodeState::NodeConnected) => "Connected",
        Ok(NodeState::NodeUnavailable) => "Unavailable",
        Ok(NodeState::NodeGone) => "Gone",
        Ok(NodeState::NodeError) => "Error",
        _ => "Unknown",
    }
}

/// `NAME STATUS AGE FLOWS/S CURRENT/MAX-FLOWS [VERSION ADDRESS TLS]`.
pub fn node_table(nodes: &[Node], wide: bool) -> String {
    const NA: &str = "N/A";
    let mut tw = TabWriter::hubble();
    tw.write("NAME\tSTATUS\tAGE\tFLOWS/S\tCURRENT/MAX-FLOWS");
    if wide {
        tw.write("\tVERSION\tADDRESS\tTLS");
    }
    tw.write("\n");
    for n in nodes {
        // Age is rounded to the second, and the rate uses the rounded age.
        let secs = (n.uptime_ns.saturating_add(500_000_000)) / 1_000_000_000;
        let (age, rate) = if secs > 0 {
            (
                gofmt::duration(Duration::from_secs(secs)),
                format!("{:.2}", n.seen_flows as f64 / secs as f64),
            )
        } else {
            (NA.to_owned(), NA.to_owned())
        };
        let flows = if n.max_flows > 0 {
            format!(
                "{}/{} ({:6.2}%)",
                n.num_flows,
                n.max_flows,
                n.num_flows as f64 / n.max_flows as f64 * 100.0
            )
        } else {
            NA.to_owned()
        };
        tw.write(&format!(
            "{}\t{}\t{age}\t{rate}\t{flows}",
            clean(&n.name),
            state_name(n.state)
        ));
        if wide {
            let version = if n.version.is_empty() {
                NA.to_owned()
            } else {
                clean(&n.version)
            };
            let tls = match &n.tls {
                Some(t) if t.enabled => "Enabled",
                Some(_) => "Disabled",
                None => NA,
            };
            tw.write(&format!("\t{version}\t{}\t{tls}", clean(&n.address)));
        }
        tw.write("\n");
    }
    tw.render()
}

/// `NAMESPACE [CLUSTER]`.
pub fn namespace_table(namespaces: &[Namespace], wide: bool) -> String {
    let mut tw = TabWriter::hubble();
    tw.write(if wide {
        "NAMESPACE\tCLUSTER\n"
    } else {
        "NAMESPACE\n"
    });
    for ns in namespaces {
        tw.write(&clean(&ns.namespace));
        if wide && !ns.cluster.is_empty() {
            tw.write(&format!("\t{}", clean(&ns.cluster)));
        }
        tw.write("\n");
    }
    tw.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_proto::observer::Tls;

    fn nodes() -> Vec<Node> {
        vec![
            Node {
                name: "foo".into(),
                version: "1".into(),
                address: "1.2.3.4".into(),
                state: NodeState::NodeConnected as i32,
                tls: Some(Tls {
                    enabled: true,
                    server_name: "foo.bar.tls".into(),
                }),
                uptime_ns: 1_000_000_000_000,
                num_flows: 500,
                max_flows: 1000,
                seen_flows: 0,
            },
            Node {
                name: "bar".into(),
                version: "2".into(),
                address: "5.6.7.8".into(),
                state: NodeState::NodeUnavailable as i32,
                ..Default::default()
            },
            Node {
                name: "baz".into(),
                version: "3".into(),
                state: NodeState::NodeGone as i32,
                ..Default::default()
            },
            Node {
                name: "faz".into(),
                version: "4".into(),
                state: NodeState::NodeError as i32,
                ..Default::default()
            },
        ]
    }

    #[test]
    fn node_tables_match_hubble() {
        assert_eq!(
            node_table(&nodes(), false),
            "NAME   STATUS        AGE      FLOWS/S   CURRENT/MAX-FLOWS\n\
             foo    Connected     16m40s   0.00      500/1000 ( 50.00%)\n\
             bar    Unavailable   N/A      N/A       N/A\n\
             baz    Gone          N/A      N/A       N/A\n\
             faz    Error         N/A      N/A       N/A\n"
        );
        assert_eq!(
            node_table(&nodes(), true),
            "NAME   STATUS        AGE      FLOWS/S   CURRENT/MAX-FLOWS    VERSION   ADDRESS   TLS\n\
             foo    Connected     16m40s   0.00      500/1000 ( 50.00%)   1         1.2.3.4   Enabled\n\
             bar    Unavailable   N/A      N/A       N/A                  2         5.6.7.8   N/A\n\
             baz    Gone          N/A      N/A       N/A                  3                   N/A\n\
             faz    Error         N/A      N/A       N/A                  4                   N/A\n"
        );
        assert_eq!(
            node_table(&[Node::default()], false),
            "NAME   STATUS    AGE   FLOWS/S   CURRENT/MAX-FLOWS\n       Unknown   N/A   N/A       N/A\n"
        );
    }

    #[test]
    fn node_json_matches_hubble() {
        assert_eq!(
            json_list(&nodes()[..2]),
            "[\n  {\n    \"name\": \"foo\",\n    \"version\": \"1\",\n    \"address\": \"1.2.3.4\",\n    \"state\": \"NODE_CONNECTED\",\n    \"tls\": {\n      \"enabled\": true,\n      \"server_name\": \"foo.bar.tls\"\n    },\n    \"uptime_ns\": \"1000000000000\",\n    \"num_flows\": \"500\",\n    \"max_flows\": \"1000\"\n  },\n  {\n    \"name\": \"bar\",\n    \"version\": \"2\",\n    \"address\": \"5.6.7.8\",\n    \"state\": \"NODE_UNAVAILABLE\"\n  }\n]\n"
        );
        assert_eq!(json_list::<Node>(&[]), "null\n");
        assert_eq!(json_list(&[Node::default()]), "[\n  {}\n]\n");
    }

    #[test]
    fn namespace_tables() {
        let ns = vec![
            Namespace {
                cluster: "c1".into(),
                namespace: "default".into(),
            },
            Namespace {
                cluster: String::new(),
                namespace: "kube-system".into(),
            },
        ];
        assert_eq!(
            namespace_table(&ns, false),
            "NAMESPACE\ndefault\nkube-system\n"
        );
        assert_eq!(
            namespace_table(&ns, true),
            "NAMESPACE   CLUSTER\ndefault     c1\nkube-system\n"
        );
    }
}
