//! `observer.Observer` on the agent: flows from the local store with Hubble's request semantics.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use weir_proto::filter::FlowFilters;
use weir_proto::flow::{self, LostEvent, LostEventSource};
use weir_proto::google::protobuf::Timestamp;
use weir_proto::observer::{self, get_flows_response::ResponseTypes, observer_server::Observer};

use super::fieldmask::FieldMask;
use crate::convert::{Converter, namespaces};
use crate::flows::StoredFlow;
use crate::monitor::MonitorStats;
use crate::store::FlowStore;

/// Flows are copied out of the store this many at a time.
const CHUNK: usize = 4096;
/// How often followers are told about events the kernel lost.
const LOST_EVENT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct ObserverService {
    pub(crate) store: Arc<FlowStore>,
    pub(crate) stats: Arc<MonitorStats>,
    pub(crate) converter: Converter,
    pub(crate) node_name: Arc<str>,
    pub(crate) node_address: Arc<str>,
}

type FlowStream = Pin<Box<dyn Stream<Item = Result<observer::GetFlowsResponse, Status>> + Send>>;
type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn ts_ns(t: &Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(t.nanos))
}

fn now_ts() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// One GetFlows request, validated.
struct Query {
    filters: FlowFilters,
    mask: FieldMask,
    number: u64,
    first: bool,
    follow: bool,
    since: Option<i64>,
    until: Option<i64>,
}

impl Query {
    fn new(req: observer::GetFlowsRequest) -> Result<Query, Status> {
        if req.first && req.follow {
            return Err(Status::invalid_argument(
                "first cannot be combined with follow",
            ));
        }
        let filters = FlowFilters::new(&req.whitelist, &req.blacklist)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mask = FieldMask::new(
            req.field_mask
                .as_ref()
                .map(|m| m.paths.as_slice())
                .unwrap_or_default(),
        )
        .map_err(Status::invalid_argument)?;
        let since = req.since.as_ref().map(ts_ns);
        let until = if req.follow {
            None
        } else {
            req.until.as_ref().map(ts_ns)
        };
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            return Err(Status::invalid_argument("since is after until"));
        }
        Ok(Query {
            filters,
            mask,
            number: req.number,
            first: req.first,
            follow: req.follow,
            since,
            until,
        })
    }

    fn in_time(&self, f: &StoredFlow) -> bool {
        self.since.is_none_or(|s| f.time_unix_ns >= s)
            && self.until.is_none_or(|u| f.time_unix_ns <= u)
    }
}

impl ObserverService {
    fn response(&self, f: &StoredFlow, q: &Query) -> Option<observer::GetFlowsResponse> {
        let flow = self.converter.to_flow(f);
        if !q.filters.matches(&flow) {
            return None;
        }
        let time = flow.time;
        Some(observer::GetFlowsResponse {
            node_name: self.node_name.to_string(),
            time,
            response_types: Some(ResponseTypes::Flow(q.mask.apply(flow))),
        })
    }

    fn lost(&self, source: LostEventSource, n: u64) -> observer::GetFlowsResponse {
        let now = now_ts();
        observer::GetFlowsResponse {
            node_name: self.node_name.to_string(),
            time: Some(now),
            response_types: Some(ResponseTypes::LostEvents(LostEvent {
                source: source as i32,
                num_events_lost: n,
                cpu: None,
                first: Some(now),
                last: Some(now),
            })),
        }
    }

    /// Produces the responses of one request into `tx` until done or the client goes away.
    async fn stream(self, q: Query, tx: mpsc::Sender<Result<observer::GetFlowsResponse, Status>>) {
        let (oldest, head) = self.store.bounds();
        let send = |r| tx.send(Ok(r));

        // History. As in Hubble, `since` takes precedence over `number`: with `first` or `since`
        // flows are read forward from the oldest in the window and `number` limits how many (not
        // for a follower). Otherwise `number` counts back from the newest; a request without
        // number, since or follow gets every stored flow.
        if q.first || q.since.is_some() {
            let mut cursor = oldest;
            let mut sent = 0u64;
            'first: while cursor < head {
                let chunk = self
                    .store
                    .read_forward(cursor, CHUNK.min((head - cursor) as usize));
                let Some(last) = chunk.last() else { break };
                cursor = last.seq + 1;
                for f in &chunk {
                    if q.until.is_some_and(|u| f.time_unix_ns > u) {
                        break 'first;
                    }
                    if !q.in_time(f) {
                        continue;
                    }
                    if let Some(r) = self.response(f, &q) {
                        if send(r).await.is_err() {
                            return;
                        }
                        sent += 1;
                        if q.number > 0 && !q.follow && sent >= q.number {
                            break 'first;
                        }
                    }
                }
            }
        } else if q.number > 0 || !q.follow {
            let limit = if q.number > 0 { q.number } else { u64::MAX };
            let mut picked = Vec::new();
            let mut cursor = head;
            'last: while cursor > oldest {
                let chunk = self.store.read_backward(cursor, CHUNK);
                let Some(last) = chunk.last() else { break };
                cursor = last.seq;
                for f in &chunk {
                    if !q.in_time(f) {
                        continue;
                    }
                    if let Some(r) = self.response(f, &q) {
                        picked.push(r);
                        if picked.len() as u64 >= limit {
                            break 'last;
                        }
                    }
                }
            }
            for r in picked.into_iter().rev() {
                if send(r).await.is_err() {
                    return;
                }
            }
        }
        if !q.follow {
            return;
        }

        // Follow: everything after the head at request time.
        let mut cursor = head;
        let mut kernel_lost = self.stats.kernel_lost.load(Ordering::Relaxed);
        let mut tick = tokio::time::interval(LOST_EVENT_INTERVAL);
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tick.tick() => {
                    let now = self.stats.kernel_lost.load(Ordering::Relaxed);
                    if now > kernel_lost {
                        if send(self.lost(LostEventSource::PerfEventRingBuffer, now - kernel_lost)).await.is_err() {
                            return;
                        }
                        kernel_lost = now;
                    }
                }
                _ = self.store.wait_for(cursor) => {
                    let chunk = self.store.read_forward(cursor, CHUNK);
                    let Some(first) = chunk.first() else { continue };
                    if first.seq > cursor
                        && send(self.lost(LostEventSource::HubbleRingBuffer, first.seq - cursor)).await.is_err()
                    {
                        return;
                    }
                    for f in &chunk {
                        cursor = f.seq + 1;
                        if let Some(r) = self.response(f, &q)
                            && send(r).await.is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
    }
}

fn with_version<T>(mut r: Response<T>) -> Response<T> {
    if let Ok(v) = env!("CARGO_PKG_VERSION").parse() {
        r.metadata_mut().insert("hubble-server-version", v);
    }
    r
}

#[tonic::async_trait]
impl Observer for ObserverService {
    type GetFlowsStream = FlowStream;
    type GetAgentEventsStream = EventStream<observer::GetAgentEventsResponse>;
    type GetDebugEventsStream = EventStream<observer::GetDebugEventsResponse>;

    async fn get_flows(
        &self,
        request: Request<observer::GetFlowsRequest>,
    ) -> Result<Response<FlowStream>, Status> {
        let q = Query::new(request.into_inner())?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(self.clone().stream(q, tx));
        Ok(with_version(Response::new(Box::pin(ReceiverStream::new(
            rx,
        )))))
    }

    async fn get_agent_events(
        &self,
        _: Request<observer::GetAgentEventsRequest>,
    ) -> Result<Response<Self::GetAgentEventsStream>, Status> {
        Err(Status::unimplemented(
            "weir-agent does not record agent events",
        ))
    }

    async fn get_debug_events(
        &self,
        _: Request<observer::GetDebugEventsRequest>,
    ) -> Result<Response<Self::GetDebugEventsStream>, Status> {
        Err(Status::unimplemented(
            "weir-agent does not record debug events",
        ))
    }

    async fn get_nodes(
        &self,
        _: Request<observer::GetNodesRequest>,
    ) -> Result<Response<observer::GetNodesResponse>, Status> {
        Ok(with_version(Response::new(observer::GetNodesResponse {
            nodes: vec![observer::Node {
                name: self.node_name.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                address: self.node_address.to_string(),
                state: weir_proto::relay::NodeState::NodeConnected as i32,
                tls: None,
                uptime_ns: self.store.uptime_ns(),
                num_flows: self.store.num_flows(),
                max_flows: self.store.max_flows(),
                seen_flows: self.store.seen_flows(),
            }],
        })))
    }

    async fn get_namespaces(
        &self,
        _: Request<observer::GetNamespacesRequest>,
    ) -> Result<Response<observer::GetNamespacesResponse>, Status> {
        let hour_ago = ts_ns(&now_ts()) - 3_600_000_000_000;
        // Namespaces are few: a linear check avoids allocating per flow.
        let mut all: Vec<(String, String)> = Vec::new();
        let (_, mut cursor) = self.store.bounds();
        'scan: loop {
            let chunk = self.store.read_backward(cursor, CHUNK);
            let Some(last) = chunk.last() else { break };
            cursor = last.seq;
            for f in &chunk {
                if f.time_unix_ns < hour_ago {
                    break 'scan;
                }
                for (cluster, ns) in namespaces(f) {
                    if !all.iter().any(|(c, n)| c == cluster && n == ns) {
                        all.push((cluster.to_string(), ns.to_string()));
                    }
                }
            }
        }
        all.sort();
        Ok(with_version(Response::new(
            observer::GetNamespacesResponse {
                namespaces: all
                    .into_iter()
                    .map(|(cluster, namespace)| observer::Namespace { cluster, namespace })
                    .collect(),
            },
        )))
    }

    async fn server_status(
        &self,
        _: Request<observer::ServerStatusRequest>,
    ) -> Result<Response<observer::ServerStatusResponse>, Status> {
        Ok(with_version(Response::new(
            observer::ServerStatusResponse {
                num_flows: self.store.num_flows(),
                max_flows: self.store.max_flows(),
                seen_flows: self.store.seen_flows(),
                uptime_ns: self.store.uptime_ns(),
                num_connected_nodes: None,
                num_unavailable_nodes: None,
                unavailable_nodes: Vec::new(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                flows_rate: self.store.flows_rate(),
                num_lost_events: self.stats.lost_events(),
            },
        )))
    }
}

/// A `flow.Flow` verdict filter helper for tests and callers.
pub fn flow_of(r: &observer::GetFlowsResponse) -> Option<&flow::Flow> {
    match &r.response_types {
        Some(ResponseTypes::Flow(f)) => Some(f),
        _ => None,
    }
}
