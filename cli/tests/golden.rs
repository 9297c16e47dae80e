//! Golden tests of every `weir observe` output format on realistic flows.
//!
//! Each file under `tests/golden/` holds standard output, then standard
//! error after a `--- stderr ---` line. Refresh with
//! `WEIR_UPDATE_SNAPSHOTS=1 cargo test -p weir-cli --test golden`.

mod common;

use weir_cli::observe::printer::{Painter, Printer, PrinterOptions};
use weir_cli::observe::request::Output;
use weir_cli::timefmt::TimeFormat;

fn render(opts: PrinterOptions) -> String {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    {
        let mut printer = Printer::new(opts, &mut out, &mut err);
        for res in common::responses() {
            printer.write_response(&res).expect("writing to memory");
        }
        printer.finish().expect("writing to memory");
    }
    format!(
        "{}--- stderr ---\n{}",
        String::from_utf8(out).expect("utf-8"),
        String::from_utf8(err).expect("utf-8")
    )
}

fn opts(output: Output) -> PrinterOptions {
    PrinterOptions {
        output,
        ..Default::default()
    }
}

#[test]
fn golden_outputs() {
    let variants: Vec<(&str, PrinterOptions)> = vec![
        ("compact.txt", opts(Output::Compact)),
        (
            "compact-policy-names-node-name.txt",
            PrinterOptions {
                policy_names: true,
                node_name: true,
                ..opts(Output::Compact)
            },
        ),
        (
            "compact-color.txt",
            PrinterOptions {
                paint: Painter { enabled: true },
                ..opts(Output::Compact)
            },
        ),
        (
            "compact-numeric-rfc3339nano.txt",
            PrinterOptions {
                ip_translation: false,
                time_format: TimeFormat::Rfc3339Nano,
                ..opts(Output::Compact)
            },
        ),
        ("dict.txt", opts(Output::Dict)),
        (
            "dict-policy-names-node-name.txt",
            PrinterOptions {
                policy_names: true,
                node_name: true,
                ..opts(Output::Dict)
            },
        ),
        ("table.txt", opts(Output::Table)),
        (
            "table-node-name.txt",
            PrinterOptions {
                node_name: true,
                ..opts(Output::Table)
            },
        ),
        ("jsonpb.txt", opts(Output::JsonPb)),
    ];
    let failures: Vec<String> = variants
        .into_iter()
        .filter_map(|(name, o)| common::check_snapshot("golden", name, &render(o)).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn jsonpb_lines_read_back_identically() {
    // What -o jsonpb prints is what --input-file reads.
    for res in common::responses() {
        let line = weir_cli::observe::printer::to_json(&res);
        let back: weir_proto::observer::GetFlowsResponse =
            serde_json::from_str(&line).expect("jsonpb output parses back");
        assert_eq!(back, res);
    }
}
