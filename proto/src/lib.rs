//! weir's Hubble-compatible API.
//!
//! - [`flow`], [`observer`], [`peer`], [`relay`]: messages, enums and tonic
//!   clients/servers generated from weir's own `.proto` files under
//!   `proto/api/v1/`, which use Hubble's package names, field names, field
//!   numbers and enum values. Every message also implements serde with
//!   protojson rules and the declared field names, so
//!   `serde_json::to_string(&flow)` prints what `hubble observe -o json`
//!   prints (`"IP"`, `"Type"`, `"Summary"`, enum names, 64-bit integers as
//!   strings, RFC 3339 timestamps).
//! - [`weir`]: weir's own `weir.Agent` service (policy status); not Hubble's.
//! - [`google::protobuf`]: the well-known types used by those messages
//!   (`Timestamp`, `BoolValue`, `FieldMask`, ...).
//! - [`filter`]: Hubble's `FlowFilter` semantics.
//! - [`FILE_DESCRIPTOR_SET`]: the compiled descriptors, for gRPC reflection.
//!
//! Naming follows prost: `IP` is [`flow::Ip`], `TCPFlags` is
//! [`flow::TcpFlags`], `ICMPv4` is [`flow::IcmPv4`], a field named `Type` or
//! `type` is `r#type`, `Summary` is `summary`, enum fields are `i32` with
//! typed accessors (`flow.verdict()`), and enum variants drop the enum name
//! prefix (`Verdict::VERDICT_UNKNOWN` is `flow::Verdict::Unknown`). A oneof
//! becomes an enum in a module named after its message:
//! `flow::layer4::Protocol::{Tcp, Udp, IcmPv4, IcmPv6, Sctp, Vrrp, Igmp}`,
//! `flow::layer7::Record::{Dns, Http, Kafka}`,
//! `observer::get_flows_response::ResponseTypes::{Flow, NodeStatus, LostEvents}`.

#![forbid(unsafe_code)]

pub mod filter;

/// Hubble's `flow` package: `Flow`, `FlowFilter`, events and enums.
pub mod flow {
    // Generated code: oneofs hold messages of very different sizes.
    #![allow(clippy::large_enum_variant)]
    include!(concat!(env!("OUT_DIR"), "/flow.rs"));
    include!(concat!(env!("OUT_DIR"), "/flow.serde.rs"));
}

/// Hubble's `observer` package: the `Observer` service and its messages.
pub mod observer {
    // Generated code: oneofs hold messages of very different sizes.
    #![allow(clippy::large_enum_variant)]
    include!(concat!(env!("OUT_DIR"), "/observer.rs"));
    include!(concat!(env!("OUT_DIR"), "/observer.serde.rs"));
}

/// Hubble's `peer` package: the `Peer` service (`Notify`).
pub mod peer {
    include!(concat!(env!("OUT_DIR"), "/peer.rs"));
    include!(concat!(env!("OUT_DIR"), "/peer.serde.rs"));
}

/// Hubble's `relay` package: node status events and states.
pub mod relay {
    include!(concat!(env!("OUT_DIR"), "/relay.rs"));
    include!(concat!(env!("OUT_DIR"), "/relay.serde.rs"));
}

/// weir's own agent API (`weir.Agent`): what the agent enforces. Not part of Hubble's API.
pub mod weir {
    include!(concat!(env!("OUT_DIR"), "/weir.rs"));
    include!(concat!(env!("OUT_DIR"), "/weir.serde.rs"));
}

mod observer_json;
mod timestamp;

/// Protobuf's well-known types, with their protojson serde encodings.
pub mod google {
    /// `google.protobuf`: pbjson-types, except [`Timestamp`](protobuf::Timestamp),
    /// which is weir's own so that it prints exactly like protojson.
    pub mod protobuf {
        pub use crate::timestamp::{Timestamp, TimestampError};
        pub use pbjson_types::*;
    }
}

/// Encoded `google.protobuf.FileDescriptorSet` of every weir `.proto` file
/// and its imports (for `tonic-reflection` and descriptor-driven tools).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/weir_proto_descriptor.bin"));

#[cfg(test)]
mod tests;
