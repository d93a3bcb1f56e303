//! The control thread's glue between the H.248 [`Server`] and the workers.
//!
//! H.248 transactions become [`LegChange`]s (control crate); this module collects the two legs
//! of a context into one [`ContextProgram`], sends it to the context's worker as a [`FlowOp`],
//! and turns the workers' [`FlowEvent`]s back into Notify (armed events) and statistics.
//!
//! With the server's `defer_replies` on, a transaction's reply is held until every worker
//! command it caused is acknowledged (Installed, InstallFailed, Released): the MGC hears "done"
//! only when the data plane is, an install the worker refuses becomes error 510, and a Subtract
//! reply carries the final counters the worker reports on release. Each held reply has the
//! server's deadline: when it passes, the MGC gets error 500 and the glue forgets the reply
//! (an acknowledgement that still comes later finds nothing to release).

use mgw_h248::h248::ast::ErrorDescriptor;
use mgw_h248::h248::mg::{LegChange, TerminationStats};
use mgw_h248::procedures::{self, LegSpec};
use mgw_h248::server::{ReplyToken, Server, ServerCounters, ServerEvent, TransactionStats};
use mgw_tls::{Fingerprint, HashFunction, PeerFingerprints, SecurityRole};
use mgw_worker::flow::MsrpRoute;
use mgw_worker::{
    Application, ContextProgram, ControlEnd, Doorbell, FlowEvent, FlowOp, LegProgram, Side,
    TcpRole, Transport,
};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Counters of the glue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Contexts programmed on a worker.
    pub installed: u64,
    /// Contexts a worker refused.
    pub install_failed: u64,
    /// Contexts released (statistics received).
    pub released: u64,
    /// Notifies sent for data-plane events.
    pub notifies: u64,
    /// Leg updates (Modify) sent to a worker.
    pub updates: u64,
    /// Commands that found a worker's ring full.
    pub ring_full: u64,
    /// TLS/DTLS sessions established.
    pub secure_up: u64,
    /// TLS/DTLS failures.
    pub secure_failed: u64,
    /// TCP establishment failures.
    pub tcp_failed: u64,
    /// The H.248 transport's counters.
    pub transport: ServerCounters,
    /// The commands the MG answered, and its reply latencies.
    pub transactions: TransactionStats,
    /// Replies held, now, for the data plane's acknowledgement.
    pub held_replies: u64,
}

/// One H.248 context as the glue tracks it.
struct Ctx {
    legs: Vec<(String, LegSpec)>,
    generation: u32,
    worker: usize,
    installed: bool,
    releasing: bool,
}

/// Application-awareness policy for relays.
#[derive(Debug, Clone, Copy)]
pub struct Awareness {
    /// Relay MSRP in aware mode (framing checked, messages counted).
    pub msrp: bool,
    /// Validate BFCP.
    pub bfcp: bool,
    /// Validate UDPTL and count loss.
    pub udptl: bool,
}

/// The error of a transaction the data plane could not carry out.
fn refusal() -> ErrorDescriptor {
    ErrorDescriptor {
        code: 510,
        text: Some("insufficient resources in the data plane".into()),
    }
}

/// An H.248 reply held until the workers have done what its transaction asked.
#[derive(Default)]
struct Held {
    /// Worker acknowledgements still awaited.
    waiting: usize,
    /// Final counters of released terminations, for the Subtract replies.
    stats: Vec<(String, TerminationStats)>,
    /// A context of this transaction could not be installed.
    failed: bool,
}

/// The control thread.
pub struct Gateway {
    server: Server,
    workers: Vec<ControlEnd>,
    contexts: HashMap<u32, Ctx>,
    generation: u32,
    aware: Awareness,
    stats: GatewayStats,
    held: HashMap<ReplyToken, Held>,
    /// Which held replies wait for which context, oldest first. A worker answers one context's
    /// commands in the order they were sent (one ring), so a Subtract pipelined behind its
    /// context's Add waits behind the Add's acknowledgement instead of taking its place.
    waiter: HashMap<u32, VecDeque<ReplyToken>>,
    /// The transaction being handled had a change the data plane could not take (no worker
    /// command was sent for it), so its reply must be an error.
    refused: bool,
    /// Rung by the workers when they report events while the control thread is parked.
    doorbell: Option<Arc<Doorbell>>,
}

// procedures refuses more peer fingerprints than one leg's verifier holds; the two bounds
// must be the same number or fingerprints would be dropped here silently.
const _: () = assert!(procedures::MAX_PEER_FINGERPRINTS == PeerFingerprints::CAPACITY);

fn leg_program(spec: &LegSpec) -> LegProgram {
    let mut fps = PeerFingerprints::new();
    for fp in &spec.peer_fingerprints {
        let parsed =
            HashFunction::from_name(&fp.hash).and_then(|h| Fingerprint::from_digest(h, &fp.digest));
        if let Ok(f) = parsed {
            let _ = fps.push(f);
        }
    }
    LegProgram {
        local: spec.local,
        remote: spec.remote,
        transport: spec.transport,
        tcp_role: spec.tcp_role.unwrap_or(TcpRole::Passive),
        establish_now: spec.establishment == procedures::Establishment::Immediate,
        latching: spec.latching,
        security_role: spec.security_role.unwrap_or(SecurityRole::Server),
        peer_fingerprints: fps,
        msrp: msrp_route(spec),
    }
}

/// An MSRP leg's URIs for the worker's To-Path/From-Path rewriting: the MGW's own `a=path`
/// and the peer's (RFC 4975 §8.1). `None` for other applications, and when a value exceeds the
/// worker's inline bounds (see [`routes_missing`]: such a context is refused, not relayed with
/// paths the peers would reject).
fn msrp_route(spec: &LegSpec) -> Option<MsrpRoute> {
    let procedures::AppParams::Msrp {
        path, local_path, ..
    } = &spec.application
    else {
        return None;
    };
    MsrpRoute::new(local_path.as_bytes(), path.join(" ").as_bytes())
}

/// An aware MSRP context that must rewrite paths (not CEMA on both sides) but lacks a route on
/// a leg (a URI or path beyond the worker's inline bounds, `MSRP_URI_MAX`/`MSRP_PATH_MAX`):
/// relaying would hand each peer To-Paths it does not own, so the Add is refused (510).
fn routes_missing(aware: bool, specs: [&LegSpec; 2], legs: &[LegProgram; 2]) -> bool {
    let msrp = matches!(specs[0].application, procedures::AppParams::Msrp { .. });
    msrp && aware && !both_cema(specs[0], specs[1]) && legs.iter().any(|l| l.msrp.is_none())
}

/// RFC 6714 §4 / TS 29.334: with `a=msrp-cema` from both endpoints they address each other end
/// to end, so the MGW stays agnostic of the paths; otherwise each endpoint was given the MGW's
/// `a=path`, and the MGW rewrites between the legs (both legs keep their routes).
fn both_cema(a: &LegSpec, b: &LegSpec) -> bool {
    let cema = |s: &LegSpec| {
        matches!(
            s.application,
            procedures::AppParams::Msrp { cema: true, .. }
        )
    };
    cema(a) && cema(b)
}

impl Gateway {
    /// A control thread over `server`, programming `workers` (contexts are spread by id).
    pub fn new(server: Server, workers: Vec<ControlEnd>, aware: Awareness) -> Gateway {
        Gateway {
            server,
            workers,
            contexts: HashMap::new(),
            generation: 0,
            aware,
            stats: GatewayStats::default(),
            held: HashMap::new(),
            waiter: HashMap::new(),
            refused: false,
            doorbell: None,
        }
    }

    /// Wakes on the workers' events as well as on H.248 input: `doorbell` is the one the
    /// workers' ends were given ([`mgw_worker::WorkerEnd::with_doorbell`]), and ringing it
    /// wakes this gateway's [`Gateway::poll`]. A held reply then leaves as soon as the worker
    /// acknowledges, not at the poll's timeout. Without a doorbell (or with an in-memory
    /// server) the gateway looks at the workers' events after each poll only.
    #[must_use]
    pub fn with_doorbell(mut self, doorbell: Arc<Doorbell>) -> Gateway {
        if let Some(w) = self.server.waker() {
            doorbell.connect(move || w.wake());
        }
        self.doorbell = Some(doorbell);
        self
    }

    /// The counters, with the H.248 transport's own read at the time of the call.
    pub fn stats(&self) -> GatewayStats {
        GatewayStats {
            transport: self.server.counters(),
            transactions: self.server.transaction_stats(),
            held_replies: self.server.held_replies() as u64,
            ..self.stats
        }
    }

    /// Each worker's ring depths, now: commands it has not taken, events not yet handled here.
    pub fn ring_depths(&self) -> Vec<(usize, usize)> {
        self.workers
            .iter()
            .map(|w| (w.pending_ops(), w.pending_events()))
            .collect()
    }

    /// The H.248 server (for an in-memory one, [`Server::push_datagram`] and friends).
    pub fn server_mut(&mut self) -> &mut Server {
        &mut self.server
    }

    /// The H.248 server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Replies held until the workers acknowledge (see the module docs).
    pub fn held_replies(&self) -> usize {
        self.held.len()
    }

    /// Contexts the glue tracks (installed, or waiting for their second leg).
    pub fn contexts(&self) -> usize {
        self.contexts.len()
    }

    /// Begins shutdown (ServiceChange Forced, or Graceful after `graceful`).
    pub fn shutdown(&mut self, graceful: Option<Duration>) {
        self.server.shutdown(graceful);
    }

    /// Runs the H.248 side for up to `max_wait`, then the workers' events. Returns the server
    /// events that are not leg changes (registration, failover, shutdown).
    ///
    /// # Errors
    /// Socket errors of the H.248 transport.
    pub fn poll(&mut self, max_wait: Duration) -> io::Result<Vec<ServerEvent>> {
        // Park, then look at the rings once more: an event pushed before the park is handled
        // here (and the poll does not block), one pushed after it rings the doorbell.
        let mut wait = max_wait;
        if let Some(bell) = &self.doorbell {
            bell.park();
            if self.drain_workers() {
                wait = Duration::ZERO;
            }
        }
        let events = self.server.poll(wait);
        if let Some(bell) = &self.doorbell {
            bell.unpark();
        }
        let events = events?;
        let mut rest = Vec::new();
        for ev in events {
            match ev {
                ServerEvent::Leg(change) => {
                    self.on_leg_change(*change);
                }
                ServerEvent::Execute { token, changes } => {
                    let mut waiting = 0;
                    self.refused = false;
                    for change in changes {
                        if let Some(context) = self.on_leg_change(change) {
                            self.waiter.entry(context).or_default().push_back(token);
                            waiting += 1;
                        }
                    }
                    if waiting == 0 && self.refused {
                        self.server.complete(token, Err(refusal()));
                    } else if waiting == 0 {
                        self.server.complete(token, Ok(()));
                    } else {
                        self.held.insert(
                            token,
                            Held {
                                waiting,
                                failed: self.refused,
                                ..Held::default()
                            },
                        );
                    }
                }
                // Counted by the server (`transport.held_expired`).
                ServerEvent::Expired { token } => {
                    self.held.remove(&token);
                }
                other => rest.push(other),
            }
        }
        self.drain_workers();
        Ok(rest)
    }

    /// Sends a command; false if the worker's ring is full (then no acknowledgement will come,
    /// so nothing waits for one; the counter says why).
    fn send(&mut self, worker: usize, op: FlowOp) -> bool {
        if self.workers[worker].send(op).is_err() {
            self.stats.ring_full += 1;
            return false;
        }
        true
    }

    /// Applies one leg change. Returns the context when a worker command was sent whose
    /// acknowledgement is to be awaited.
    fn on_leg_change(&mut self, change: LegChange) -> Option<u32> {
        match change {
            LegChange::Install {
                context,
                termination,
                spec,
                ..
            } => {
                let n = self.workers.len().max(1);
                let c = self.contexts.entry(context).or_insert(Ctx {
                    legs: Vec::new(),
                    generation: 0,
                    worker: context as usize % n,
                    installed: false,
                    releasing: false,
                });
                c.legs.push((termination, spec));
                if c.legs.len() != 2 || c.installed {
                    return None;
                }
                self.generation = self.generation.wrapping_add(1);
                c.generation = self.generation;
                c.installed = true;
                let app = c.legs[0].1.application.kind();
                let aware = match app {
                    Application::Msrp => self.aware.msrp,
                    Application::Bfcp => self.aware.bfcp,
                    Application::Udptl => self.aware.udptl,
                    Application::Opaque => false,
                };
                let mut legs = [leg_program(&c.legs[0].1), leg_program(&c.legs[1].1)];
                if routes_missing(aware, [&c.legs[0].1, &c.legs[1].1], &legs) {
                    self.stats.install_failed += 1;
                    self.contexts.remove(&context);
                    self.refused = true;
                    return None;
                }
                if both_cema(&c.legs[0].1, &c.legs[1].1) {
                    legs.iter_mut().for_each(|l| l.msrp = None);
                }
                let prog = ContextProgram {
                    context,
                    generation: c.generation,
                    application: app,
                    aware,
                    legs,
                };
                let w = c.worker;
                if !self.send(w, FlowOp::Install(prog)) {
                    // Nothing was programmed, so the MGC must not hear "done".
                    self.contexts.remove(&context);
                    self.refused = true;
                    return None;
                }
                self.stats.installed += 1;
                Some(context)
            }
            LegChange::Update {
                context,
                termination,
                spec,
                ..
            } => {
                let c = self.contexts.get_mut(&context)?;
                let i = c.legs.iter().position(|(t, _)| *t == termination)?;
                let mut prog = leg_program(&spec);
                c.legs[i].1 = spec;
                if c.legs.len() == 2 && both_cema(&c.legs[0].1, &c.legs[1].1) {
                    prog.msrp = None;
                }
                if c.installed {
                    // The worker applies it to a leg not yet connected (the Remote SDP came
                    // with a Modify) and refuses, counting, a change to a live one.
                    let side = if i == 0 { Side::A } else { Side::B };
                    let (w, generation) = (c.worker, c.generation);
                    self.stats.updates += 1;
                    self.send(
                        w,
                        FlowOp::Update {
                            context,
                            generation,
                            side,
                            leg: prog,
                        },
                    );
                }
                None
            }
            LegChange::Release { context, .. } => {
                // One command releases both legs (a Subtract of either ends the relay); a second
                // Release of the same context finds it already on its way.
                let c = self.contexts.get_mut(&context)?;
                if !c.installed {
                    self.contexts.remove(&context);
                    return None;
                }
                if c.releasing {
                    return None;
                }
                c.releasing = true;
                let (w, gen) = (c.worker, c.generation);
                self.send(
                    w,
                    FlowOp::Release {
                        context,
                        generation: gen,
                    },
                )
                .then_some(context)
            }
            LegChange::Signal {
                context,
                termination,
                ..
            } => {
                let c = self.contexts.get(&context)?;
                let i = c.legs.iter().position(|(t, _)| *t == termination)?;
                let side = if i == 0 { Side::A } else { Side::B };
                let (w, gen) = (c.worker, c.generation);
                self.send(
                    w,
                    FlowOp::Establish {
                        context,
                        generation: gen,
                        side,
                    },
                );
                None
            }
        }
    }

    /// One awaited acknowledgement for `context` arrived.
    fn acknowledge(&mut self, context: u32, failed: bool, stats: Vec<(String, TerminationStats)>) {
        let Some(queue) = self.waiter.get_mut(&context) else {
            return;
        };
        let Some(token) = queue.pop_front() else {
            return;
        };
        if queue.is_empty() {
            self.waiter.remove(&context);
        }
        let Some(h) = self.held.get_mut(&token) else {
            return;
        };
        h.waiting = h.waiting.saturating_sub(1);
        h.failed |= failed;
        h.stats.extend(stats);
        if h.waiting > 0 {
            return;
        }
        let Some(h) = self.held.remove(&token) else {
            return;
        };
        if h.failed {
            self.server.complete(token, Err(refusal()));
        } else {
            self.server.complete_with_stats(token, &h.stats);
        }
    }

    fn termination(&self, context: u32, side: Side) -> Option<(String, Transport)> {
        let c = self.contexts.get(&context)?;
        let (t, spec) = c.legs.get(side.index())?;
        Some((t.clone(), spec.transport))
    }

    fn notify(&mut self, context: u32, side: Side, event: impl Fn(Transport) -> &'static str) {
        if let Some((term, tr)) = self.termination(context, side) {
            if self.server.observe(&term, event(tr), Vec::new()).is_some() {
                self.stats.notifies += 1;
            }
        }
    }

    /// Turns worker events into Notify, statistics and held replies. True if there were any.
    pub fn drain_workers(&mut self) -> bool {
        let mut any = false;
        for w in 0..self.workers.len() {
            while let Some(ev) = self.workers[w].recv() {
                any = true;
                self.on_event(ev);
            }
        }
        any
    }

    fn on_event(&mut self, ev: FlowEvent) {
        match ev {
            FlowEvent::Installed { context, .. } => self.acknowledge(context, false, Vec::new()),
            FlowEvent::InstallFailed { context, .. } => {
                self.stats.install_failed += 1;
                self.contexts.remove(&context);
                self.acknowledge(context, true, Vec::new());
            }
            FlowEvent::TcpFailed { context, side, .. } => {
                self.stats.tcp_failed += 1;
                self.notify(context, side, |_| "tcp/ef");
            }
            FlowEvent::SecureUp { .. } => self.stats.secure_up += 1,
            FlowEvent::SecureFailed { context, side, .. } => {
                self.stats.secure_failed += 1;
                self.notify(context, side, |t| {
                    if t == Transport::DtlsUdp {
                        "dtls/ef"
                    } else {
                        "tls/ef"
                    }
                });
            }
            FlowEvent::PeerClosed { context, side } => {
                self.notify(context, side, |t| match t {
                    Transport::TlsTcp => "tls/sr",
                    Transport::DtlsUdp => "dtls/sr",
                    _ => "tcp/pc",
                });
            }
            FlowEvent::Released {
                context,
                generation,
                stats,
            } => {
                if self.contexts.get(&context).map(|c| c.generation) != Some(generation) {
                    return;
                }
                let mut finals = Vec::new();
                for side in [Side::A, Side::B] {
                    if let Some((term, _)) = self.termination(context, side) {
                        let s = stats[side.index()];
                        let t = TerminationStats {
                            octets_sent: s.octets_sent,
                            octets_received: s.octets_received,
                        };
                        // For audits while the termination lives on in the model (a release the
                        // data plane started), and for a held Subtract reply.
                        self.server.update_stats(&term, t);
                        finals.push((term, t));
                    }
                }
                self.contexts.remove(&context);
                self.stats.released += 1;
                self.acknowledge(context, false, finals);
            }
            FlowEvent::TcpUp { .. } | FlowEvent::Latched { .. } => {}
        }
    }
}

#[cfg(test)]
mod msrp_route_tests {
    use super::*;
    use mgw_h248::h248::ast::StreamMode;
    use mgw_h248::procedures::{derive_leg, LegInput, Realms};

    fn spec(remote: &str, realm: &str, r: &mut Realms) -> LegSpec {
        derive_leg(
            &LegInput {
                local: None,
                remote: Some(remote),
                properties: &[],
                mode: StreamMode::SendRecv,
                previous: None,
                local_is_ours: false,
            },
            r,
            "SHA-256 00:11",
        )
        .map(|o| o.spec)
        .unwrap_or_else(|e| panic!("{realm}: {e}"))
    }

    fn legs(cema_ue: bool, cema_core: bool) -> (LegSpec, LegSpec) {
        let mut r = Realms::default();
        r.add("core", "10.0.0.1".parse().unwrap(), 50000, 50010);
        let cema = |on: bool| if on { "\na=msrp-cema" } else { "" };
        let ue = spec(
            &format!("v=0\nc=IN IP4 198.51.100.2\nm=message 9 TCP/MSRP *\na=setup:active\na=path:msrp://198.51.100.2:9/ue;tcp{}", cema(cema_ue)),
            "core",
            &mut r,
        );
        let core = spec(
            &format!("v=0\nc=IN IP4 10.9.0.2\nm=message 2855 TCP/MSRP *\na=setup:passive\na=path:msrp://10.9.0.2:2855/c1 msrp://10.9.0.3:2855/c2;tcp{}", cema(cema_core)),
            "core",
            &mut r,
        );
        (ue, core)
    }

    #[test]
    fn routes_carry_the_mgw_path_and_the_peer_path() {
        let (ue, core) = legs(false, false);
        let p = leg_program(&core);
        let route = p.msrp.expect("an MSRP leg has a route");
        let procedures::AppParams::Msrp { local_path, .. } = &core.application else {
            unreachable!()
        };
        assert_eq!(route.local_uri.as_bytes(), local_path.as_bytes());
        assert!(local_path.starts_with("msrp://10.0.0.1:"));
        assert_eq!(
            route.remote_path.as_bytes(),
            b"msrp://10.9.0.2:2855/c1 msrp://10.9.0.3:2855/c2;tcp"
        );
        assert!(!both_cema(&ue, &core));
        assert!(!both_cema(&legs(true, false).0, &legs(true, false).1));
    }

    #[test]
    fn a_path_beyond_the_worker_bounds_refuses_the_context() {
        let (ue, core) = legs(false, false);
        let ok = [leg_program(&ue), leg_program(&core)];
        assert!(!routes_missing(true, [&ue, &core], &ok));
        // A core path of many relays, longer than MSRP_PATH_MAX.
        let mut r = Realms::default();
        r.add("core", "10.0.0.1".parse().unwrap(), 50000, 50010);
        let hops: Vec<String> = (0..12)
            .map(|i| format!("msrp://relay{i}.core.example.net:2855/s{i};tcp"))
            .collect();
        let long = spec(
            &format!(
                "v=0\nc=IN IP4 10.9.0.2\nm=message 2855 TCP/MSRP *\na=setup:passive\na=path:{}",
                hops.join(" ")
            ),
            "core",
            &mut r,
        );
        let legs = [leg_program(&ue), leg_program(&long)];
        assert!(legs[1].msrp.is_none(), "beyond the inline bound");
        assert!(routes_missing(true, [&ue, &long], &legs));
        // Agnostic contexts relay paths as they are: nothing to refuse.
        assert!(!routes_missing(false, [&ue, &long], &legs));
    }

    #[test]
    fn cema_on_both_legs_means_no_rewriting() {
        let (ue, core) = legs(true, true);
        assert!(both_cema(&ue, &core));
    }
}
