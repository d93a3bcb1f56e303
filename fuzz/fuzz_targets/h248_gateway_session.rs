//! Fuzz a whole H.248 session through the control thread: the in-memory `control` server (real
//! association, transaction layer and MG model, deferred replies) under `mgwd::gateway`, with
//! this target playing both the MGC and the workers.
//!
//! Input: messages separated by 0xFF. The first byte of each chunk picks the time step (low
//! nibble, 100 ms units: retransmission and Pending timers fire) and what the workers do with
//! the commands they hold (high nibble: acknowledge, refuse, stay silent, or report a data-plane
//! event); the rest is one datagram from the MGC.
//!
//! Invariants: no panic; every message the MG sends parses; once the workers acknowledge every
//! command and the MGC clears every context, no reply is still held (each transaction was
//! answered), the glue tracks no context, and every port of every realm is free again.
#![no_main]

use mgw_core::time::Instant;
use mgw_h248::h248::association::AssociationConfig;
use mgw_h248::h248::ast::{MessageBody, Mid, Transaction};
use mgw_h248::h248::mg::MgConfig;
use mgw_h248::h248::parse_message;
use mgw_h248::procedures::Realms;
use mgw_h248::server::{Server, ServerConfig, TransportKind};
use mgw_worker::{
    channel, FlowEvent, FlowOp, InstallFailure, LegStats, SecurityFailure, Side, TcpFailure,
    WorkerEnd,
};
use mgwd::gateway::{Awareness, Gateway};
use std::net::SocketAddr;
use std::time::Duration;

const MGC: &str = "127.0.0.2:2944";

/// The workers as the glue sees them: rings of 8 commands (so a burst can fill one) and what
/// each worker has installed (context, generation).
struct Workers {
    ends: Vec<WorkerEnd>,
    live: Vec<(u32, u32)>,
}

impl Workers {
    /// Answers every queued command as a worker would; `refuse` fails installs instead.
    fn acknowledge(&mut self, refuse: bool) {
        for w in &mut self.ends {
            while let Some(op) = w.recv() {
                match op {
                    FlowOp::Install(p) if refuse => w.send(FlowEvent::InstallFailed {
                        context: p.context,
                        generation: p.generation,
                        reason: InstallFailure::NoCapacity,
                    }),
                    FlowOp::Install(p) => {
                        self.live.push((p.context, p.generation));
                        w.send(FlowEvent::Installed {
                            context: p.context,
                            generation: p.generation,
                        });
                    }
                    FlowOp::Release {
                        context,
                        generation,
                    } => {
                        self.live.retain(|&(c, _)| c != context);
                        w.send(FlowEvent::Released {
                            context,
                            generation,
                            stats: [LegStats::default(); 2],
                        });
                    }
                    FlowOp::Establish { .. } | FlowOp::Update { .. } => {}
                }
            }
        }
    }

    /// A data-plane event on a live context (chosen by `pick`): what a worker reports when a
    /// peer misbehaves, including a release the data plane starts itself.
    fn event(&mut self, kind: u8, pick: u8) {
        let Some(&(context, generation)) =
            self.live.get(usize::from(pick) % self.live.len().max(1))
        else {
            return;
        };
        let side = if pick & 0x80 == 0 { Side::A } else { Side::B };
        let ev = match kind {
            0 => FlowEvent::PeerClosed { context, side },
            1 => FlowEvent::TcpFailed {
                context,
                side,
                reason: TcpFailure::Refused,
            },
            2 => FlowEvent::SecureFailed {
                context,
                side,
                reason: SecurityFailure::FingerprintMismatch,
            },
            _ => {
                self.live.retain(|&(c, _)| c != context);
                FlowEvent::Released {
                    context,
                    generation,
                    stats: [LegStats::default(); 2],
                }
            }
        };
        let n = self.ends.len();
        self.ends[context as usize % n].send(ev);
    }
}

/// Runs the gateway until the server has no input left, checking what the MG sends.
fn pump(gw: &mut Gateway, out: &mut Vec<Vec<u8>>) {
    for _ in 0..4 {
        let _ = gw.poll(Duration::ZERO).expect("no socket, no I/O error");
        while let Some((_, bytes)) = gw.server_mut().pop_transmit() {
            assert!(
                parse_message(&bytes).is_ok(),
                "the MG emitted unparseable text: {:?}",
                String::from_utf8_lossy(&bytes)
            );
            out.push(bytes);
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mgc: SocketAddr = MGC.parse().unwrap();
    let mut realms = Realms::default();
    // Small realms: exhaustion is reachable.
    realms.add("access", "192.0.2.1".parse().unwrap(), 40000, 40007);
    realms.add("core", "10.0.0.1".parse().unwrap(), 50000, 50007);
    let server = Server::in_memory(
        ServerConfig {
            bind: "127.0.0.1:2944".parse().unwrap(),
            transport: TransportKind::Udp,
            mid: Mid::Ip {
                addr: "127.0.0.1".parse().unwrap(),
                port: Some(2944),
            },
            association: AssociationConfig {
                mgcs: vec![mgc],
                max_avalanche_delay: Duration::from_millis(1),
                ..AssociationConfig::default()
            },
            mg: MgConfig::default(),
            defer_replies: true,
        },
        realms,
        "SHA-256 AA:BB".into(),
        0,
    );
    let (mut ctl, mut ends) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (c, w) = channel(8, 64);
        ctl.push(c);
        ends.push(w);
    }
    let mut workers = Workers {
        ends,
        live: Vec::new(),
    };
    let mut gw = Gateway::new(
        server,
        ctl,
        Awareness {
            msrp: true,
            bfcp: true,
            udptl: true,
        },
    );
    let mut out = Vec::new();
    // Registration: answer the MG's ServiceChange (H.248.1 §11.2).
    let mut now = 10u64;
    gw.server_mut().set_now(Instant::from_millis(now));
    pump(&mut gw, &mut out);
    let sc = out
        .iter()
        .find_map(|m| match parse_message(m).ok()?.body {
            MessageBody::Transactions(t) => t.into_iter().find_map(|t| match t {
                Transaction::Request(r) => Some(r.id),
                _ => None,
            }),
            MessageBody::Error(_) => None,
        })
        .expect("the MG registers first");
    let reply = format!("!/3 [127.0.0.2]:2944 P={sc}{{C=-{{SC=ROOT}}}}");
    gw.server_mut().push_datagram(mgc, reply.as_bytes());
    pump(&mut gw, &mut out);

    for chunk in data.split(|&b| b == 0xFF) {
        let (ctrl, msg) = chunk.split_first().map_or((0, chunk), |(c, m)| (*c, m));
        now += u64::from(ctrl & 0x0F) * 100;
        gw.server_mut().set_now(Instant::from_millis(now));
        if !msg.is_empty() {
            gw.server_mut().push_datagram(mgc, msg);
        }
        pump(&mut gw, &mut out);
        match ctrl >> 4 {
            0..=7 => workers.acknowledge(false),
            8 => workers.acknowledge(true),
            9 | 10 => {} // the worker is slow: commands stay queued
            k => workers.event(k - 11, msg.first().copied().unwrap_or(0)),
        }
        pump(&mut gw, &mut out);
        out.clear();
    }

    // The end: the workers catch up, then the MGC clears everything (H.248.1 §7.2.3).
    workers.acknowledge(false);
    pump(&mut gw, &mut out);
    now += 1;
    gw.server_mut().set_now(Instant::from_millis(now));
    gw.server_mut()
        .push_datagram(mgc, b"!/3 [127.0.0.2]:2944 T=4000000000{C=*{S=*}}");
    for _ in 0..3 {
        pump(&mut gw, &mut out);
        workers.acknowledge(false);
    }
    pump(&mut gw, &mut out);
    assert_eq!(
        gw.held_replies(),
        0,
        "a transaction's reply is held although every worker command was acknowledged"
    );
    if gw.server().mg().contexts().is_empty() {
        assert_eq!(
            gw.contexts(),
            0,
            "the glue tracks a context the MG no longer has"
        );
        assert_eq!(gw.server().mg().realms().in_use("access"), 0);
        assert_eq!(gw.server().mg().realms().in_use("core"), 0);
    }
});
