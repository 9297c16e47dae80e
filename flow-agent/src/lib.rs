//! weir-flow-agent
