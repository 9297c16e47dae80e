//! weir-probes
