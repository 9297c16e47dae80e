//! protojson for `observer.GetFlowsResponse` and `observer.ExportEvent`.
//!
//! protojson writes fields in declaration order, so Hubble prints the
//! `response_types` oneof (`flow`, `node_status`, ...) before `node_name` and
//! `time`. pbjson always writes oneofs last, so these two messages are left
//! out of pbjson generation (see build.rs) and serialized here instead.
//! Parsing accepts proto and lowerCamelCase names, treats `null` as absent,
//! skips unknown fields and rejects two members of the oneof.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

use crate::flow::{AgentEvent, DebugEvent, Flow, LostEvent};
use crate::google::protobuf::Timestamp;
use crate::observer::{ExportEvent, GetFlowsResponse, export_event, get_flows_response};
use crate::relay::NodeStatusEvent;

fn field_count(oneof_set: bool, node_name: &str, time: Option<&Timestamp>) -> usize {
    usize::from(oneof_set) + usize::from(!node_name.is_empty()) + usize::from(time.is_some())
}

fn end_fields<S: SerializeStruct>(
    mut st: S,
    node_name: &str,
    time: Option<&Timestamp>,
) -> Result<S::Ok, S::Error> {
    if !node_name.is_empty() {
        st.serialize_field("node_name", node_name)?;
    }
    if let Some(time) = time {
        st.serialize_field("time", time)?;
    }
    st.end()
}

impl Serialize for GetFlowsResponse {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use get_flows_response::ResponseTypes as R;
        let len = field_count(
            self.response_types.is_some(),
            &self.node_name,
            self.time.as_ref(),
        );
        let mut st = ser.serialize_struct("observer.GetFlowsResponse", len)?;
        match &self.response_types {
            Some(R::Flow(v)) => st.serialize_field("flow", v)?,
            Some(R::NodeStatus(v)) => st.serialize_field("node_status", v)?,
            Some(R::LostEvents(v)) => st.serialize_field("lost_events", v)?,
            None => {}
        }
        end_fields(st, &self.node_name, self.time.as_ref())
    }
}

impl Serialize for ExportEvent {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use export_event::ResponseTypes as R;
        let len = field_count(
            self.response_types.is_some(),
            &self.node_name,
            self.time.as_ref(),
        );
        let mut st = ser.serialize_struct("observer.ExportEvent", len)?;
        match &self.response_types {
            Some(R::Flow(v)) => st.serialize_field("flow", v)?,
            Some(R::NodeStatus(v)) => st.serialize_field("node_status", v)?,
            Some(R::LostEvents(v)) => st.serialize_field("lost_events", v)?,
            Some(R::AgentEvent(v)) => st.serialize_field("agent_event", v)?,
            Some(R::DebugEvent(v)) => st.serialize_field("debug_event", v)?,
            None => {}
        }
        end_fields(st, &self.node_name, self.time.as_ref())
    }
}

/// Every field either message may carry; unknown fields are skipped.
#[derive(Deserialize)]
struct Fields {
    flow: Option<Flow>,
    #[serde(alias = "nodeStatus")]
    node_status: Option<NodeStatusEvent>,
    #[serde(alias = "lostEvents")]
    lost_events: Option<LostEvent>,
    #[serde(alias = "agentEvent")]
    agent_event: Option<AgentEvent>,
    #[serde(alias = "debugEvent")]
    debug_event: Option<DebugEvent>,
    #[serde(alias = "nodeName")]
    node_name: Option<String>,
    time: Option<Timestamp>,
}

impl Fields {
    fn oneof_count(&self) -> usize {
        [
            self.flow.is_some(),
            self.node_status.is_some(),
            self.lost_events.is_some(),
            self.agent_event.is_some(),
            self.debug_event.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count()
    }
}

const MULTIPLE: &str = "more than one field of oneof response_types is set";

impl<'de> Deserialize<'de> for GetFlowsResponse {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        use get_flows_response::ResponseTypes as R;
        let f = Fields::deserialize(de)?;
        if f.agent_event.is_some() || f.debug_event.is_some() {
            return Err(serde::de::Error::custom(
                "agent_event and debug_event are not fields of observer.GetFlowsResponse",
            ));
        }
        if f.oneof_count() > 1 {
            return Err(serde::de::Error::custom(MULTIPLE));
        }
        let response_types = f
            .flow
            .map(R::Flow)
            .or(f.node_status.map(R::NodeStatus))
            .or(f.lost_events.map(R::LostEvents));
        Ok(Self {
            response_types,
            node_name: f.node_name.unwrap_or_default(),
            time: f.time,
        })
    }
}

impl<'de> Deserialize<'de> for ExportEvent {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        use export_event::ResponseTypes as R;
        let f = Fields::deserialize(de)?;
        if f.oneof_count() > 1 {
            return Err(serde::de::Error::custom(MULTIPLE));
        }
        let response_types = f
            .flow
            .map(R::Flow)
            .or(f.node_status.map(R::NodeStatus))
            .or(f.lost_events.map(R::LostEvents))
            .or(f.agent_event.map(R::AgentEvent))
            .or(f.debug_event.map(R::DebugEvent));
        Ok(Self {
            response_types,
            node_name: f.node_name.unwrap_or_default(),
            time: f.time,
        })
    }
}
