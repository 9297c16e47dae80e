//! Printing `GetFlowsResponse`s: compact lines, dict blocks, an aligned
//! table or protojson lines.
//!
//! Flows go to standard output. Lost-event notices and node status events
//! go to standard error in the human formats (compact, dict, table), so that
//! standard output stays a clean stream of flows; with `-o json` lost events
//! stay in the JSON stream on standard output, and node status goes to
//! standard error, as in Hubble.

mod color;
mod flow;

use std::io::{self, Write};

use weir_proto::flow::{Flow, LostEvent, LostEventSource};
use weir_proto::google::protobuf::Timestamp;
use weir_proto::observer::{GetFlowsResponse, get_flows_response::ResponseTypes};
use weir_proto::relay::{NodeState, NodeStatusEvent};

pub use color::{Painter, clean};
pub use flow::{FlowView, drop_reason, flow_type, identity_label, policy_names};

use super::request::Output;
use crate::gofmt;
use crate::tabwriter::TabWriter;
use crate::timefmt::TimeFormat;

/// Separates dict blocks.
const DICT_SEPARATOR: &str = "------------";
/// Node name lists are cut after about this many characters.
const NODE_NAMES_CUTOFF: usize = 50;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct PrinterOptions {
    pub output: Output,
    pub time_format: TimeFormat,
    pub paint: Painter,
    pub node_name: bool,
    pub policy_names: bool,
    pub ip_translation: bool,
    /// Also print informational node status events and unknown responses.
    pub debug: bool,
}

impl Default for PrinterOptions {
    fn default() -> Self {
        PrinterOptions {
            output: Output::Compact,
            time_format: TimeFormat::StampMilli,
            paint: Painter::default(),
            node_name: false,
            policy_names: false,
            ip_translation: true,
            debug: false,
        }
    }
}

/// Writes responses to `out` (flows) and `err` (notices).
pub struct Printer<O: Write, E: Write> {
    opts: PrinterOptions,
    out: O,
    err: E,
    /// Records printed so far (drives the table header and dict separators).
    line: usize,
    table: TabWriter,
}

impl<O: Write, E: Write> Printer<O, E> {
    pub fn new(opts: PrinterOptions, out: O, err: E) -> Self {
        let mut opts = opts;
        if matches!(opts.output, Output::Table | Output::JsonPb) {
            // Colors would break the column widths of a table.
            opts.paint = Painter { enabled: false };
        }
        Printer {
            opts,
            out,
            err,
            line: 0,
            table: TabWriter::hubble(),
        }
    }

    /// Prints one response of the stream.
    pub fn write_response(&mut self, res: &GetFlowsResponse) -> io::Result<()> {
        match &res.response_types {
            Some(ResponseTypes::Flow(f)) => self.write_flow(res, f),
            Some(ResponseTypes::LostEvents(l)) => self.write_lost_events(res, l),
            Some(ResponseTypes::NodeStatus(s)) => self.write_node_status(res, s),
            None => {
                if self.opts.debug {
                    writeln!(self.err, "unknown response type: {}", to_json(res))?;
                }
                Ok(())
            }
        }
    }

    /// Flushes the table (if any) and the writers.
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.table.is_empty() {
            let text = self.table.render();
            self.out.write_all(text.as_bytes())?;
        }
        self.out.flush()?;
        self.err.flush()
    }

    fn time(&self, ts: Option<&Timestamp>) -> String {
        self.opts.time_format.format(ts)
    }

    fn write_flow(&mut self, res: &GetFlowsResponse, f: &Flow) -> io::Result<()> {
        let o = self.opts;
        let view = FlowView::new(f, o.paint, o.ip_translation, o.policy_names);
        match o.output {
            Output::JsonPb => return writeln!(self.out, "{}", to_json(res)),
            Output::Compact => {
                let (mut src, mut dst) = view.hosts();
                let (mut src_id, mut dst_id) = view.identities();
                let arrow = match view.is_reply() {
                    None => "<>",
                    Some(false) => "->",
                    Some(true) => {
                        std::mem::swap(&mut src, &mut dst);
                        std::mem::swap(&mut src_id, &mut dst_id);
                        "<-"
                    }
                };
                let node = if o.node_name {
                    format!(" [{}]", clean(&f.node_name))
                } else {
                    String::new()
                };
                writeln!(
                    self.out,
                    "{}{node}: {src} {src_id} {arrow} {dst} {dst_id} {} {} ({})",
                    self.time(f.time.as_ref()),
                    view.event_type(),
                    view.verdict(),
                    view.summary()
                )?;
            }
            Output::Dict => {
                let (src, dst) = view.hosts();
                if self.line != 0 {
                    writeln!(self.out, "{DICT_SEPARATOR}")?;
                }
                let mut block = format!("  TIMESTAMP: {}\n", self.time(f.time.as_ref()));
                if o.node_name {
                    block.push_str(&format!("       NODE: {}\n", clean(&f.node_name)));
                }
                block.push_str(&format!(
                    "     SOURCE: {src}\nDESTINATION: {dst}\n       TYPE: {}\n    VERDICT: {}\n    SUMMARY: {}\n",
                    view.event_type(),
                    view.verdict(),
                    view.summary()
                ));
                self.out.write_all(block.as_bytes())?;
            }
            Output::Table => {
                let (src, dst) = view.hosts();
                if self.line == 0 {
                    self.table_header();
                }
                let mut row = format!("{}\t", self.time(f.time.as_ref()));
                if o.node_name {
                    row.push_str(&format!("{}\t", clean(&f.node_name)));
                }
                row.push_str(&format!(
                    "{src}\t{dst}\t{}\t{}\t{}\n",
                    view.event_type(),
                    view.verdict(),
                    view.summary()
                ));
                self.table.write(&row);
            }
        }
        self.line += 1;
        Ok(())
    }

    fn table_header(&mut self) {
        let node = if self.opts.node_name { "NODE\t" } else { "" };
        self.table.write(&format!(
            "TIMESTAMP\t{node}SOURCE\tDESTINATION\tTYPE\tVERDICT\tSUMMARY\n"
        ));
    }

    fn write_lost_events(&mut self, res: &GetFlowsResponse, l: &LostEvent) -> io::Result<()> {
        let source = match LostEventSource::try_from(l.source) {
            Ok(s) => s.as_str_name().to_owned(),
            Err(_) => l.source.to_string(),
        };
        let cpu = l.cpu.as_ref().map_or(0, |c| c.value);
        let span = if l.first.is_some() || l.last.is_some() {
            format!(
                " (first: {}, last: {})",
                self.time(l.first.as_ref()),
                self.time(l.last.as_ref())
            )
        } else {
            String::new()
        };
        let time = self.time(res.time.as_ref());
        match self.opts.output {
            Output::JsonPb => return writeln!(self.out, "{}", to_json(res)),
            Output::Compact | Output::Table => {
                writeln!(
                    self.err,
                    "{time} EVENTS LOST: {source} CPU({cpu}) {}{span}",
                    l.num_events_lost
                )?;
            }
            Output::Dict => {
                let mut block = String::new();
                if self.line != 0 {
                    block.push_str(DICT_SEPARATOR);
                    block.push('\n');
                }
                block.push_str(&format!("  TIMESTAMP: {time}\n"));
                if self.opts.node_name {
                    block.push_str(&format!("       NODE: {}\n", clean(&res.node_name)));
                }
                block.push_str(&format!(
                    "     SOURCE: {source}\n       TYPE: EVENTS LOST\n    VERDICT: -\n    SUMMARY: CPU({cpu}) - {}{span}\n",
                    l.num_events_lost
                ));
                self.err.write_all(block.as_bytes())?;
                self.line += 1;
            }
        }
        Ok(())
    }

    fn write_node_status(&mut self, res: &GetFlowsResponse, s: &NodeStatusEvent) -> io::Result<()> {
        let state = NodeState::try_from(s.state_change);
        if !self.opts.debug
            && !matches!(state, Ok(NodeState::NodeError | NodeState::NodeUnavailable))
        {
            return Ok(());
        }
        let names = clean(&join_with_cutoff(&s.node_names, ", ", NODE_NAMES_CUTOFF));
        let time = self.time(res.time.as_ref());
        match self.opts.output {
            Output::JsonPb => writeln!(self.err, "{}", to_json(res)),
            Output::Dict => {
                let mut block = String::new();
                if self.line != 0 {
                    block.push_str(DICT_SEPARATOR);
                    block.push('\n');
                } else {
                    self.line += 1;
                }
                let message = if s.message.is_empty() {
                    "N/A".to_owned()
                } else {
                    gofmt::quote(&s.message)
                };
                let state_name = state.map_or_else(
                    |_| s.state_change.to_string(),
                    |st| st.as_str_name().to_owned(),
                );
                block.push_str(&format!(
                    "  TIMESTAMP: {time}\n      STATE: {state_name}\n      NODES: {names}\n    MESSAGE: {}\n",
                    clean(&message)
                ));
                self.err.write_all(block.as_bytes())
            }
            Output::Compact | Output::Table => {
                let prefix = format!("{time} [{}]", clean(&res.node_name));
                let n = s.node_names.len();
                let msg = match state {
                    Ok(NodeState::NodeConnected) => {
                        format!("Receiving flows from {n} nodes: {names}")
                    }
                    Ok(NodeState::NodeUnavailable) => format!("{n} nodes are unavailable: {names}"),
                    Ok(NodeState::NodeGone) => format!("{n} nodes removed from cluster: {names}"),
                    Ok(NodeState::NodeError) => {
                        format!(
                            "Error {} on {n} nodes: {names}",
                            clean(&gofmt::quote(&s.message))
                        )
                    }
                    _ => format!("unknown node status event: {}", clean(&to_json(s))),
                };
                writeln!(self.err, "{prefix}: {msg}")
            }
        }
    }
}

/// Joins names, leaving out the ones past `target_len` characters (always
/// keeping the first) and noting how many were left out.
pub fn join_with_cutoff(items: &[String], sep: &str, target_len: usize) -> String {
    let mut len = 0;
    let mut end = items.len();
    for (i, item) in items.iter().enumerate() {
        len += item.len() + sep.len();
        if len > target_len && i > 0 {
            end = i;
            break;
        }
    }
    let joined = items[..end].join(sep);
    match items.len() - end {
        0 => joined,
        omitted => format!("{joined} (and {omitted} more)"),
    }
}

/// A message as one line of protojson, HTML-escaped like Go's encoder.
pub fn to_json<T: serde::Serialize + ?Sized>(msg: &T) -> String {
    match serde_json::to_string(msg) {
        Ok(s) => gofmt::html_escape_json(&s),
        Err(e) => format!("{{\"error\":{}}}", gofmt::quote(&e.to_string())),
    }
}

#[cfg(test)]
mod tests;
