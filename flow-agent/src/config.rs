//! The agent's configuration: one typed struct, from flags, `WEIR_*` environment variables and
//! an optional YAML file (`--config`), in that order of precedence.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::store::DEFAULT_MAX_FLOWS;

/// weir-agent: enforces CiliumNetworkPolicy on this node's endpoints in the kernel and serves
/// their flows over Hubble's Observer API.
#[derive(Debug, Clone, Parser)]
#[command(name = "weir-agent", version, about, long_about = None, args_override_self = true)]
pub struct AgentConfig {
    /// YAML file with any of these settings (keys are the long flag names); flags and
    /// environment variables take precedence over it.
    #[arg(long, env = "WEIR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Name of this node, as in the state directory's cluster.yaml and endpoints' `node`.
    #[arg(long, env = "WEIR_NODE_NAME")]
    pub node_name: String,

    /// Standalone state: cluster.yaml and endpoints/*.yaml describing the cluster.
    #[arg(long, env = "WEIR_STATE_DIR", value_name = "DIR")]
    pub state_dir: PathBuf,

    /// Directory of policy YAML files (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy,
    /// NetworkPolicy), watched for changes.
    #[arg(long, env = "WEIR_POLICY_DIR", value_name = "DIR")]
    pub policy_dir: PathBuf,

    /// Unix socket serving the gRPC API (Hubble's observer.Observer, peer.Peer, health, weir.Agent).
    #[arg(
        long,
        env = "WEIR_SOCKET",
        default_value = "/var/run/weir/hubble.sock",
        value_name = "PATH"
    )]
    pub socket: PathBuf,

    /// TCP address serving the same gRPC API ("none" to disable).
    #[arg(
        long,
        env = "WEIR_LISTEN_ADDRESS",
        default_value = "[::]:4244",
        value_name = "ADDR"
    )]
    pub listen_address: String,

    /// bpffs directory for this node's pinned maps and links [default: /sys/fs/bpf/weir/<node-name>].
    #[arg(long, env = "WEIR_BPFFS_DIR", value_name = "DIR")]
    pub bpffs_dir: Option<PathBuf>,

    /// Directory for the agent's runtime state [default: /var/run/weir/<node-name>].
    #[arg(long, env = "WEIR_RUNTIME_DIR", value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// Number of recent flows kept in memory.
    #[arg(long, env = "WEIR_MAX_FLOWS", default_value_t = DEFAULT_MAX_FLOWS)]
    pub max_flows: usize,

    /// How often the state and policy directories are checked for changes.
    #[arg(long, env = "WEIR_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// At most one trace per connection and direction in this interval, besides SYN/FIN/RST
    /// (Cilium's monitor aggregation); 0s reports every packet.
    #[arg(long, env = "WEIR_TRACE_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub trace_interval: Duration,

    /// At most one drop event per flow in this interval (the event counts the drops it stands for).
    #[arg(long, env = "WEIR_DROP_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub drop_interval: Duration,

    /// Emit policy-verdict events on new connections of endpoints that have policy.
    #[arg(long, env = "WEIR_POLICY_VERDICT_EVENTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub policy_verdict_events: bool,

    /// Always allow traffic from this node (the `host` identity) to its endpoints, unless a deny
    /// rule says otherwise (Cilium's allow-localhost).
    #[arg(long, env = "WEIR_ALLOW_LOCALHOST", default_value_t = true, action = clap::ArgAction::Set)]
    pub allow_localhost: bool,

    /// The node's own network devices (comma-separated interface names: links to other nodes,
    /// the uplink): connections arriving on them for proxied (gRPC) ports of local endpoints
    /// are handed to the L7 proxy, as Cilium's `devices`. None by default: such connections
    /// are then refused.
    #[arg(
        long,
        env = "WEIR_DEVICES",
        value_name = "NAMES",
        value_delimiter = ','
    )]
    pub devices: Vec<String>,

    /// Request headers whose values HTTP flows carry (comma-separated names, at most 15), like
    /// Hubble's `headers` from Envoy; none by default.
    #[arg(
        long,
        env = "WEIR_HTTP_FLOW_HEADERS",
        value_name = "NAMES",
        value_delimiter = ',',
        value_parser = parse_header_name
    )]
    pub http_flow_headers: Vec<String>,

    /// Size of the datapath's event ring buffer in bytes (power of two).
    #[arg(long, env = "WEIR_EVENTS_RING_BYTES", default_value_t = 8 << 20)]
    pub events_ring_bytes: u32,

    /// Connection-tracking entries.
    #[arg(long, env = "WEIR_CT_MAX_ENTRIES", default_value_t = 262_144)]
    pub ct_max_entries: u32,

    /// How often expired connection-tracking entries are deleted.
    #[arg(long, env = "WEIR_CT_GC_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub ct_gc_interval: Duration,

    /// Log format.
    #[arg(long, env = "WEIR_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// Parses "500ms", "5s", "2m", "1h", "0s" (and a bare number of seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}`: expected e.g. 500ms, 5s, 2m"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "ns" => value / 1e9,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "invalid duration unit `{other}` in `{s}`: use ns, us, ms, s, m or h"
            ));
        }
    };
    Ok(Duration::from_secs_f64(secs))
}

/// A header name of `--http-flow-headers`, lower-cased.
fn parse_header_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(tchar) {
        return Err(format!("`{s}` is not an HTTP header name"));
    }
    Ok(name.to_ascii_lowercase())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Args(#[from] clap::Error),
    #[error("{0}")]
    Invalid(String),
}

impl AgentConfig {
    /// Parses flags, environment and the `--config` file.
    pub fn load<I, T>(args: I) -> Result<AgentConfig, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        // A first pass only to find --config (other required flags may come from the file).
        let file =
            find_config_flag(&args).or_else(|| std::env::var_os("WEIR_CONFIG").map(PathBuf::from));
        let Some(path) = file else {
            return AgentConfig::try_parse_from(args)?.checked();
        };
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let file_args = file_to_args(&text).map_err(|message| ConfigError::File {
            path: path.clone(),
            message,
        })?;
        // Program name, then the file's settings, then the real flags (the last wins in clap).
        let mut merged = Vec::with_capacity(args.len() + file_args.len());
        merged.extend(args.first().cloned());
        merged.extend(file_args);
        merged.extend(args.into_iter().skip(1));
        AgentConfig::try_parse_from(merged)?.checked()
    }

    /// Checks what clap cannot check per value.
    fn checked(mut self) -> Result<AgentConfig, ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        self.http_flow_headers.retain(|h| seen.insert(h.clone()));
        if self.http_flow_headers.len() > weir_policy::http::MAX_FLOW_HEADERS {
            return Err(ConfigError::Invalid(format!(
                "--http-flow-headers names {} headers; at most {} are supported",
                self.http_flow_headers.len(),
                weir_policy::http::MAX_FLOW_HEADERS
            )));
        }
        Ok(self)
    }

    pub fn bpffs_dir(&self) -> PathBuf {
        self.bpffs_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/sys/fs/bpf/weir").join(&self.node_name))
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.runtime_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/run/weir").join(&self.node_name))
    }

    /// The TCP listen address, or None when disabled.
    pub fn tcp_address(&self) -> Result<Option<SocketAddr>, String> {
        if self.listen_address == "none" || self.listen_address.is_empty() {
            return Ok(None);
        }
        let addr = if self.listen_address.starts_with(':') {
            format!("[::]{}", self.listen_address)
        } else {
            self.listen_address.clone()
        };
        addr.parse().map(Some).map_err(|_| {
            format!(
                "--listen-address `{}` is not an address like [::]:4244",
                self.listen_address
            )
        })
    }

    /// The `--help` text (snapshot-tested): exactly what `weir-agent --help` prints. clap
    /// chooses the long layout for `--help` only when some flag has a long help, so the text is
    /// taken from the `--help` path itself rather than from `render_long_help`.
    pub fn help() -> String {
        AgentConfig::command()
            .try_get_matches_from(["weir-agent", "--help"])
            .err()
            .map(|e| e.render().to_string())
            .unwrap_or_default()
    }
}

fn find_config_flag(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_str()?;
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// Turns `key: value` pairs of the file into `--key value` flags, skipping keys whose
/// environment variable is set (the environment wins over the file).
fn file_to_args(text: &str) -> Result<Vec<OsString>, String> {
    let map: std::collections::BTreeMap<String, serde_yaml::Value> =
        serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let known: Vec<String> = AgentConfig::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let mut out = Vec::new();
    for (key, value) in map {
        let flag = key.replace('_', "-");
        if !known.contains(&flag) || flag == "config" {
            return Err(format!(
                "unknown setting `{key}` (settings are the agent's long flag names)"
            ));
        }
        let env = format!("WEIR_{}", flag.replace('-', "_").to_uppercase());
        if std::env::var_os(&env).is_some() {
            continue;
        }
        let value = match value {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::Bool(b) => b.to_string(),
            serde_yaml::Value::Sequence(items) => items
                .iter()
                .map(|v| match v {
                    serde_yaml::Value::String(s) => Ok(s.clone()),
                    other => Err(format!("setting `{key}` lists {other:?}, not a string")),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => {
                return Err(format!(
                    "setting `{key}` must be a string, number, boolean or list, not {other:?}"
                ));
            }
        };
        out.push(OsString::from(format!("--{flag}")));
        out.push(OsString::from(value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_operators_write_them() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("5 parsecs").unwrap_err(),
            "invalid duration unit ` parsecs` in `5 parsecs`: use ns, us, ms, s, m or h"
        );
    }

    #[test]
    fn file_settings_apply_and_flags_override_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yaml");
        std::fs::write(
            &path,
            "node-name: from-file\nstate_dir: /s\npolicy-dir: /p\nmax-flows: 100\n",
        )
        .unwrap();
        let cfg = AgentConfig::load([
            "weir-agent",
            "--config",
            path.to_str().unwrap(),
            "--max-flows",
            "7",
        ])
        .unwrap();
        assert_eq!(cfg.node_name, "from-file");
        assert_eq!(cfg.state_dir, PathBuf::from("/s"));
        assert_eq!(cfg.max_flows, 7);
        assert_eq!(cfg.bpffs_dir(), PathBuf::from("/sys/fs/bpf/weir/from-file"));
    }

    #[test]
    fn unknown_file_setting_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yaml");
        std::fs::write(&path, "node-nmae: x\n").unwrap();
        let err =
            AgentConfig::load(["weir-agent", "--config", path.to_str().unwrap()]).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "unknown setting `node-nmae` (settings are the agent's long flag names)"
            ),
            "{err}"
        );
    }

    /// The required flags.
    const BASE: [&str; 7] = [
        "weir-agent",
        "--node-name",
        "n",
        "--state-dir",
        "/s",
        "--policy-dir",
        "/p",
    ];

    #[test]
    fn flow_headers_are_lower_cased_names_from_flags_or_a_yaml_list() {
        let base = BASE;
        let cfg = AgentConfig::load(base.iter().copied().chain([
            "--http-flow-headers",
            "Content-Type,x-request-id,content-type",
        ]))
        .unwrap();
        assert_eq!(cfg.http_flow_headers, ["content-type", "x-request-id"]);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yaml");
        std::fs::write(&path, "http-flow-headers: [User-Agent, Accept]\n").unwrap();
        let cfg = AgentConfig::load(
            base.iter()
                .copied()
                .chain(["--config", path.to_str().unwrap()]),
        )
        .unwrap();
        assert_eq!(cfg.http_flow_headers, ["user-agent", "accept"]);

        let err = AgentConfig::load(base.iter().copied().chain(["--http-flow-headers", "a b"]))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid value 'a b' for '--http-flow-headers <NAMES>': `a b` is not an HTTP header name"),
            "{err}"
        );
        let many = (0..16)
            .map(|i| format!("h{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let err = AgentConfig::load(
            base.iter()
                .copied()
                .chain(["--http-flow-headers", many.as_str()]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--http-flow-headers names 16 headers; at most 15 are supported"
        );
    }

    #[test]
    fn listen_address_accepts_the_hubble_style_port_only_form() {
        let mut cfg = AgentConfig::load(BASE).unwrap();
        assert_eq!(
            cfg.tcp_address().unwrap(),
            Some("[::]:4244".parse().unwrap())
        );
        cfg.listen_address = ":4245".into();
        assert_eq!(
            cfg.tcp_address().unwrap(),
            Some("[::]:4245".parse().unwrap())
        );
        cfg.listen_address = "none".into();
        assert_eq!(cfg.tcp_address().unwrap(), None);
    }
}
