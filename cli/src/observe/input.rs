//! `--input-file`: reading saved `GetFlowsResponse` lines (as printed by
//! `-o jsonpb`) and applying the request locally: time range, filters with
//! `weir_proto::filter`, then `--first`/`--last`.

use std::collections::VecDeque;
use std::io::BufRead;

use weir_proto::filter::FlowFilters;
use weir_proto::google::protobuf::Timestamp;
use weir_proto::observer::{GetFlowsRequest, GetFlowsResponse, get_flows_response::ResponseTypes};

use crate::error::CliError;

/// Largest `--last` applied to a file (responses are buffered).
pub const MAX_LAST: u64 = 1_000_000;

/// Reads responses from `reader`, keeps those `req` selects, in file order,
/// and hands each to `emit`.
pub fn replay<R: BufRead>(
    reader: R,
    req: &GetFlowsRequest,
    mut emit: impl FnMut(&GetFlowsResponse) -> std::io::Result<()>,
) -> Result<(), CliError> {
    let filters = FlowFilters::new(&req.whitelist, &req.blacklist)
        .map_err(|e| CliError::usage(format!("invalid filter: {e}")))?;
    let unbounded = req.number == 0 || req.number == u64::MAX;
    let keep_last = !req.first && !unbounded;
    if keep_last && req.number > MAX_LAST {
        return Err(CliError::usage(format!(
            "--last must be <= 1_000_000, got {}",
            req.number
        )));
    }
    let mut last: VecDeque<GetFlowsResponse> = VecDeque::new();
    let mut returned = 0u64;

    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let res: GetFlowsResponse = match serde_json::from_str(&line) {
            Ok(res) => res,
            Err(e) => {
                tracing::warn!(line = index + 1, error = %e, "failed to parse a jsonpb line, skipping it");
                continue;
            }
        };
        if !selected(&res, req, &filters) {
            continue;
        }
        if keep_last {
            if last.len() as u64 == req.number {
                last.pop_front();
            }
            last.push_back(res);
        } else {
            emit(&res)?;
            returned += 1;
            if req.first && !unbounded && returned >= req.number {
                return Ok(());
            }
        }
    }
    for res in &last {
        emit(res)?;
    }
    Ok(())
}

/// Whether the request selects `res`: inside `since..=until` (a missing time
/// counts as the Unix epoch, as in Hubble) and, for flows, matched by the
/// filters. Other responses pass only when there is no whitelist.
fn selected(res: &GetFlowsResponse, req: &GetFlowsRequest, filters: &FlowFilters) -> bool {
    let time = res.time.unwrap_or(Timestamp {
        seconds: 0,
        nanos: 0,
    });
    let key = |t: &Timestamp| (t.seconds, t.nanos);
    if req
        .since
        .as_ref()
        .is_some_and(|since| key(since) > key(&time))
    {
        return false;
    }
    if req
        .until
        .as_ref()
        .is_some_and(|until| key(until) < key(&time))
    {
        return false;
    }
    match &res.response_types {
        Some(ResponseTypes::Flow(flow)) => filters.matches(flow),
        _ => req.whitelist.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_proto::flow::{Flow, FlowFilter, LostEvent};

    fn line(sec: i64, verdict: i32) -> String {
        let res = GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(Flow {
                verdict,
                ..Default::default()
            })),
            node_name: String::new(),
            time: Some(Timestamp {
                seconds: sec,
                nanos: 0,
            }),
        };
        serde_json::to_string(&res).unwrap()
    }

    fn run(input: &str, req: GetFlowsRequest) -> Vec<i64> {
        let mut seen = Vec::new();
        replay(input.as_bytes(), &req, |r| {
            seen.push(r.time.map_or(-1, |t| t.seconds));
            Ok(())
        })
        .unwrap();
        seen
    }

    #[test]
    fn applies_first_last_time_and_filters() {
        let lost = serde_json::to_string(&GetFlowsResponse {
            response_types: Some(ResponseTypes::LostEvents(LostEvent::default())),
            node_name: String::new(),
            time: Some(Timestamp {
                seconds: 3,
                nanos: 0,
            }),
        })
        .unwrap();
        let input = [
            line(1, 1),
            line(2, 2),
            "not json".into(),
            lost,
            line(4, 2),
            String::new(),
            line(5, 1),
        ]
        .join("\n");
        assert_eq!(run(&input, GetFlowsRequest::default()), [1, 2, 3, 4, 5]);
        assert_eq!(
            run(
                &input,
                GetFlowsRequest {
                    number: 2,
                    ..Default::default()
                }
            ),
            [4, 5]
        );
        assert_eq!(
            run(
                &input,
                GetFlowsRequest {
                    number: 2,
                    first: true,
                    ..Default::default()
                }
            ),
            [1, 2]
        );
        assert_eq!(
            run(
                &input,
                GetFlowsRequest {
                    number: u64::MAX,
                    ..Default::default()
                }
            ),
            [1, 2, 3, 4, 5]
        );
        let dropped = FlowFilter {
            verdict: vec![2],
            ..Default::default()
        };
        assert_eq!(
            run(
                &input,
                GetFlowsRequest {
                    whitelist: vec![dropped.clone()],
                    ..Default::default()
                }
            ),
            [2, 4]
        );
        assert_eq!(
            run(
                &input,
                GetFlowsRequest {
                    blacklist: vec![dropped],
                    ..Default::default()
                }
            ),
            [1, 3, 5]
        );
        let since = Some(Timestamp {
            seconds: 2,
            nanos: 0,
        });
        let until = Some(Timestamp {
            seconds: 4,
            nanos: 0,
        });
        assert_eq!(
            run(
                &input,
                GetFlowsRequest {
                    since,
                    until,
                    ..Default::default()
                }
            ),
            [2, 3, 4]
        );
    }

    #[test]
    fn rejects_huge_last_and_bad_filters() {
        let req = GetFlowsRequest {
            number: MAX_LAST + 1,
            ..Default::default()
        };
        assert!(matches!(
            replay("".as_bytes(), &req, |_| Ok(())),
            Err(CliError::Usage(_))
        ));
        let bad = FlowFilter {
            source_ip: vec!["10.0.0.300".into()],
            ..Default::default()
        };
        let req = GetFlowsRequest {
            whitelist: vec![bad],
            ..Default::default()
        };
        assert!(matches!(
            replay("".as_bytes(), &req, |_| Ok(())),
            Err(CliError::Usage(_))
        ));
    }
}
