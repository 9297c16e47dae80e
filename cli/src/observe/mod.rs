//! `weir observe` (also `weir observe flows`): stream flows from a server or
//! a file, filter them with Hubble's flags and print them like
//! `hubble observe`.

pub mod filters;
pub mod flags;
pub mod input;
pub mod printer;
pub mod raw;
pub mod request;

use std::io::{self, Write};

use clap::{Args, Subcommand};
use weir_proto::observer::observer_client::ObserverClient;

use crate::cmd::GlobalArgs;
use crate::error::CliError;
pub use flags::ObserveArgs;
use printer::{Painter, Printer, PrinterOptions};

/// `weir observe [flows] [flags]`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ObserveCommand {
    #[command(subcommand)]
    pub sub: Option<ObserveSub>,
    #[command(flatten)]
    pub args: ObserveArgs,
}

/// Subcommands of `weir observe`.
#[derive(Debug, Clone, Subcommand)]
pub enum ObserveSub {
    /// Observe flows (the same as `weir observe`)
    #[command(long_about = "Observe flows, like `weir observe`.\n\n\
            A flag that appears more than once matches any of its values; \
            different flags must all match. --not before a flag inverts it: \
            flows matching that flag are left out.")]
    Flows(ObserveArgs),
}

impl ObserveCommand {
    /// The effective flags (`observe` or `observe flows`).
    pub fn args(&self) -> &ObserveArgs {
        match &self.sub {
            Some(ObserveSub::Flows(args)) => args,
            None => &self.args,
        }
    }

    pub async fn run(&self, global: &GlobalArgs) -> Result<(), CliError> {
        let args = self.args();
        let err: Box<dyn Write> = if args.other.silent_errors {
            Box::new(io::sink())
        } else {
            Box::new(io::stderr())
        };
        observe(args, global, io::stdout().lock(), err).await
    }
}

/// Runs `weir observe` with `args`, writing flows to `out` and notices to
/// `err`.
pub async fn observe<O: Write, E: Write>(
    args: &ObserveArgs,
    global: &GlobalArgs,
    mut out: O,
    err: E,
) -> Result<(), CliError> {
    let plan = request::plan(args, chrono::Utc::now())?;
    if args.other.print_raw_filters {
        out.write_all(raw::to_yaml(&plan.request.whitelist, &plan.request.blacklist).as_bytes())?;
        return Ok(out.flush()?);
    }
    let opts = PrinterOptions {
        output: plan.output,
        time_format: plan.time_format,
        paint: Painter::from_flag(&args.format.color),
        node_name: args.format.print_node_name,
        policy_names: args.format.print_policy_names,
        ip_translation: args.format.ip_translation && !args.format.numeric,
        debug: global.debug,
    };
    let mut printer = Printer::new(opts, out, err);

    if let Some(path) = &args.other.input_file {
        let result = if path == "-" {
            input::replay(io::stdin().lock(), &plan.request, |r| {
                printer.write_response(r)
            })
        } else {
            let file = std::fs::File::open(path)
                .map_err(|e| CliError::usage(format!("open {path}: {e}")))?;
            input::replay(io::BufReader::new(file), &plan.request, |r| {
                printer.write_response(r)
            })
        };
        printer.finish()?;
        return result;
    }

    tracing::debug!(request = ?plan.request, "sending GetFlows request");
    let channel = args.server.connect().await?;
    let mut client = ObserverClient::new(channel);
    let result = stream(&mut client, plan.request, &mut printer).await;
    printer.finish()?;
    result
}

async fn stream<O: Write, E: Write>(
    client: &mut ObserverClient<tonic::transport::Channel>,
    request: weir_proto::observer::GetFlowsRequest,
    printer: &mut Printer<O, E>,
) -> Result<(), CliError> {
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut responses = tokio::select! {
        res = client.get_flows(request) => res?.into_inner(),
        _ = &mut ctrl_c => return Ok(()),
    };
    loop {
        tokio::select! {
            msg = responses.message() => match msg {
                Ok(Some(res)) => printer.write_response(&res)?,
                Ok(None) => return Ok(()),
                Err(status) if status.code() == tonic::Code::Cancelled => return Ok(()),
                Err(status) => return Err(status.into()),
            },
            _ = &mut ctrl_c => return Ok(()),
        }
    }
}
