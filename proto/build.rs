//! Compiles every `.proto` file under `api/` without a system `protoc`:
//! protox parses them, tonic-prost-build generates the prost messages and
//! tonic clients/servers, and pbjson-build generates protojson serde impls
//! that keep the declared field names (`"IP"`, `"Type"`, `"event_type"`).
//!
//! New files are picked up automatically; each proto package `p` becomes
//! `$OUT_DIR/p.rs` plus `$OUT_DIR/p.serde.rs`.

use std::collections::BTreeSet;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use prost::Message;

/// Root of the proto import paths (`flow/flow.proto` lives in `api/v1/`).
const IMPORT_ROOT: &str = "api/v1";

/// Messages whose serde impls are written by hand.
const JSON_BY_HAND: [&str; 2] = [".observer.GetFlowsResponse", ".observer.ExportEvent"];

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let api_dir = manifest_dir.join("api");
    let import_root = manifest_dir.join(IMPORT_ROOT);

    // Cargo scans a directory given here recursively, so added, removed and
    // edited files all trigger a rebuild.
    println!("cargo:rerun-if-changed={}", api_dir.display());
    println!("cargo:rerun-if-changed=build.rs");

    let mut files = Vec::new();
    collect_protos(&api_dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(format!("no .proto files under {}", api_dir.display()).into());
    }
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, [&import_root])?;

    // Packages defined by our own files (imports such as google.protobuf are
    // also in the set, but come from extern crates).
    let packages: BTreeSet<String> = fds
        .file
        .iter()
        .filter_map(|f| f.package.clone())
        .filter(|p| !p.starts_with("google."))
        .collect();

    let descriptor_path = out_dir.join("weir_proto_descriptor.bin");
    fs::write(&descriptor_path, fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Take google.protobuf from pbjson-types, whose types carry the
        // protojson encodings (RFC 3339 timestamps, bare wrapper values).
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        // Except Timestamp: pbjson-types prints "+00:00", protojson "Z".
        .extern_path(
            ".google.protobuf.Timestamp",
            "crate::google::protobuf::Timestamp",
        )
        .compile_fds(fds)?;

    let prefixes: Vec<String> = packages.iter().map(|p| format!(".{p}")).collect();
    pbjson_build::Builder::new()
        .register_descriptors(&fs::read(&descriptor_path)?)?
        .preserve_proto_field_names()
        // Like the binary format, accept (and drop) fields from newer schemas.
        .ignore_unknown_fields()
        // protojson prints these oneofs before node_name and time; pbjson
        // would print them last. Their serde impls are in
        // src/observer_json.rs.
        .exclude(JSON_BY_HAND)
        .build(&prefixes)?;

    Ok(())
}

/// Every `*.proto` below `dir`, recursively.
fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
