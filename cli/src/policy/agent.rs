//! Talking to the agent's `weir.Agent` service, and rebuilding the policy
//! set and cluster state it last applied from the files it reports.
//!
//! The agent reports every YAML file under its policy and state directories
//! (`policy_files`, `state_files`, with their paths on the agent's host) but
//! reads them as `PolicySet::load_dir` and `ClusterState::load_dir` do:
//! the policy directory's own `*.yaml`/`*.yml` files, `cluster.yaml` and
//! `endpoints/*.yaml` of the state directory. [`rebuild`] picks the same
//! files, so a trace evaluates exactly what the agent compiled.

use std::path::Path;

use weir_policy::{ClusterState, PolicySet};
use weir_proto::weir::agent_client::AgentClient;
use weir_proto::weir::{GetPolicyRequest, GetPolicyResponse, SourceFile};

use super::files::is_yaml;
use crate::client::ServerArgs;
use crate::error::CliError;

/// `weir.Agent/GetPolicy`.
pub async fn get_policy(server: &ServerArgs) -> Result<GetPolicyResponse, CliError> {
    let mut client = AgentClient::new(server.connect().await?);
    Ok(server.unary(client.get_policy(GetPolicyRequest {})).await?)
}

fn in_dir<'a>(files: &'a [SourceFile], dir: &Path) -> Vec<&'a SourceFile> {
    let mut out: Vec<&SourceFile> = files
        .iter()
        .filter(|f| {
            let path = Path::new(&f.path);
            path.parent() == Some(dir) && is_yaml(path)
        })
        .collect();
    out.sort_by(|a, b| Path::new(&a.path).cmp(Path::new(&b.path)));
    out
}

/// The policy set and the cluster state of a `GetPolicyResponse`, read from
/// its files as the agent read them. Errors name the agent's file.
pub fn rebuild(res: &GetPolicyResponse) -> Result<(PolicySet, ClusterState), CliError> {
    let policy_dir = Path::new(&res.policy_dir);
    let policies = in_dir(&res.policy_files, policy_dir);
    let set = PolicySet::parse_sources(policies.iter().map(|f| (&f.path, &f.content)))
        .map_err(|e| CliError::runtime(format!("the agent's policies do not parse here:\n{e}")))?;

    let state_dir = Path::new(&res.state_dir);
    let cluster_path = state_dir.join("cluster.yaml");
    let cluster = res
        .state_files
        .iter()
        .find(|f| Path::new(&f.path) == cluster_path)
        .map(|f| (Path::new(&f.path), f.content.as_str()));
    let endpoints = in_dir(&res.state_files, &state_dir.join("endpoints"))
        .into_iter()
        .map(|f| (Path::new(&f.path), f.content.as_str()));
    let state = ClusterState::from_sources(cluster, endpoints).map_err(|e| {
        CliError::runtime(format!(
            "the agent's cluster state does not parse here: {e}"
        ))
    })?;
    Ok((set, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            content: content.into(),
        }
    }

    const POLICY: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: web\nspec:\n  endpointSelector: {}\n";

    #[test]
    fn picks_the_files_the_agent_reads() {
        let res = GetPolicyResponse {
            policy_dir: "/p/".into(),
            state_dir: "/s".into(),
            policy_files: vec![
                file("/p/web.yaml", POLICY),
                // Not read by the agent: in a subdirectory.
                file("/p/old/web.yaml", POLICY),
            ],
            state_files: vec![
                file(
                    "/s/endpoints/web.yml",
                    "name: web-0\nnode: n1\nips: [10.0.0.1]\ninterface: lxc1\n",
                ),
                file("/s/cluster.yaml", "name: lab\nnodes: [{name: n1}]\n"),
                file("/s/endpoints/old/x.yaml", "not: an endpoint\n"),
                file("/s/notes.yaml", "anything\n"),
            ],
            ..Default::default()
        };
        let (set, state) = rebuild(&res).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.policies()[0].origin.file, "/p/web.yaml");
        assert_eq!(state.cluster.name, "lab");
        assert_eq!(state.endpoints.len(), 1);
        assert_eq!(state.endpoints[0].name, "web-0");
    }

    #[test]
    fn errors_name_the_agents_file() {
        let res = GetPolicyResponse {
            policy_dir: "/p".into(),
            state_dir: "/s".into(),
            state_files: vec![file("/s/endpoints/a.yaml", "name: a\n")],
            ..Default::default()
        };
        let err = rebuild(&res).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "the agent's cluster state does not parse here: /s/endpoints/a.yaml: missing field `node`"
            ),
            "{err}"
        );
    }
}
