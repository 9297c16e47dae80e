//! weir-agent: see `weir-agent --help` and docs/ARCHITECTURE.md.
use std::process::ExitCode;

use weir_flow_agent::config::{AgentConfig, ConfigError};

fn main() -> ExitCode {
    let cfg = match AgentConfig::load(std::env::args_os()) {
        Ok(cfg) => cfg,
        Err(ConfigError::Args(e)) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return if usage {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
        Err(e) => {
            eprintln!("weir-agent: {e}");
            return ExitCode::from(64);
        }
    };
    weir_flow_agent::init_tracing(&cfg.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weir-agent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(weir_flow_agent::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "weir-agent failed");
            ExitCode::FAILURE
        }
    }
}
