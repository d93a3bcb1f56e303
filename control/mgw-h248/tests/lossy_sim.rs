//! Deterministic simulation: the MG (association + model) and an MGC (our own transaction layer)
//! talk over a lossy (5%), duplicating (10%), reordering (0–40 ms jitter) channel in virtual
//! time; 20% of MG executions take 100–500 ms (so Pendings flow). 300 seeds.
//!
//! Checks the transaction-layer contract end to end: every MGC request is executed by the MG at
//! most once however often it is retransmitted or duplicated; slow executions produce Pending;
//! every request gets its reply; and after the MGC subtracts everything no port is left.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use mgw_core::time::Instant;
use mgw_h248::h248::association::{AssocEvent, Association, AssociationConfig, State};
use mgw_h248::h248::ast::*;
use mgw_h248::h248::mg::{Mg, MgConfig};
use mgw_h248::h248::parse_message;
use mgw_h248::h248::transaction::{Event, TransactionConfig, TransactionLayer};
use mgw_h248::procedures::Realms;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

fn request(text: &str) -> Vec<ActionRequest> {
    let m = parse_message(format!("!/3 [127.0.0.2]:2944 T=1{{{text}}}").as_bytes()).unwrap();
    let MessageBody::Transactions(mut t) = m.body else {
        panic!()
    };
    let Transaction::Request(r) = t.remove(0) else {
        panic!()
    };
    r.actions
}

/// Returns the MG's (Pendings sent, duplicate requests answered from the cache).
fn simulate(seed: u64) -> (u64, u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mg_addr: SocketAddr = "127.0.0.1:2944".parse().unwrap();
    let mgc_addr: SocketAddr = "127.0.0.2:2944".parse().unwrap();
    let mut assoc = Association::new(
        AssociationConfig {
            mgcs: vec![mgc_addr],
            inactivity_timeout: None,
            ..AssociationConfig::default()
        },
        Mid::Ip {
            addr: mg_addr.ip(),
            port: Some(2944),
        },
        1,
        rng.next(),
        Instant::ZERO,
    );
    let mut realms = Realms::default();
    realms.add("core", "10.0.0.1".parse().unwrap(), 50000, 50063);
    let mut mg = Mg::new(MgConfig::default(), realms, "SHA-256 AA:BB".into());
    let mut mgc = TransactionLayer::new(
        TransactionConfig {
            request_acks: true,
            ..TransactionConfig::default()
        },
        Mid::Ip {
            addr: mgc_addr.ip(),
            port: Some(2944),
        },
        3,
        500,
    );
    // In flight: (deliver at, sequence) → (to, bytes).
    let mut wire: BTreeMap<(u64, u64), (SocketAddr, Vec<u8>)> = BTreeMap::new();
    let mut seq = 0u64;
    // MG work queue: execute at → (from, request).
    let mut work: BTreeMap<(u64, u64), (SocketAddr, TransactionRequest)> = BTreeMap::new();
    let mut executed: HashMap<u32, u32> = HashMap::new();
    let mut outstanding: HashMap<u32, &'static str> = HashMap::new();
    let mut contexts: Vec<u32> = Vec::new();
    let mut adds_left = 12;
    let mut subtracts_sent = false;
    let mut now = 0u64;

    let send = |wire: &mut BTreeMap<(u64, u64), (SocketAddr, Vec<u8>)>,
                rng: &mut Rng,
                seq: &mut u64,
                now: u64,
                to: SocketAddr,
                bytes: Vec<u8>| {
        let trace = std::env::var("SIM_TRACE").is_ok();
        if rng.chance(5) {
            if trace {
                eprintln!("{now} LOST -> {to}: {}", String::from_utf8_lossy(&bytes));
            }
            return; // lost
        }
        if trace {
            eprintln!("{now} SEND -> {to}: {}", String::from_utf8_lossy(&bytes));
        }
        let copies = if rng.chance(10) { 2 } else { 1 };
        for _ in 0..copies {
            *seq += 1;
            wire.insert((now + rng.next() % 40, *seq), (to, bytes.clone()));
        }
    };

    for _round in 0..200_000 {
        // Drain everything both sides want to send.
        while let Some(t) = assoc.poll_transmit() {
            send(&mut wire, &mut rng, &mut seq, now, t.to, t.bytes);
        }
        while let Some(t) = mgc.poll_transmit() {
            send(&mut wire, &mut rng, &mut seq, now, t.to, t.bytes);
        }
        // MGC logic.
        while let Some(e) = mgc.poll_event() {
            match e {
                Event::Request { from, request, .. } => {
                    // ServiceChange (or a Notify): accept.
                    let reply = ReplyResult::Actions(
                        request
                            .actions
                            .iter()
                            .map(|a| ActionReply {
                                context: a.context,
                                properties: ContextProperties::default(),
                                replies: vec![CommandReply::ServiceChange(ServiceChangeReply {
                                    termination: TerminationId::root(),
                                    result: ServiceChangeResult::Accepted,
                                })],
                                error: None,
                            })
                            .collect(),
                    );
                    mgc.send_reply(ms(now), from, request.id, reply).unwrap();
                }
                Event::Reply { reply, .. } => {
                    let kind = outstanding
                        .remove(&reply.id)
                        .expect("reply to a live request");
                    let ReplyResult::Actions(a) = &reply.result else {
                        panic!("seed {seed}: transaction error {:?}", reply.result)
                    };
                    assert_eq!(a[0].error, None, "seed {seed}: {kind} failed: {a:?}");
                    if kind == "add" {
                        let ContextId::Id(c) = a[0].context else {
                            panic!()
                        };
                        contexts.push(c);
                    }
                }
                Event::RequestTimedOut { id, .. } => {
                    panic!("seed {seed}: MGC request {id} timed out")
                }
                Event::PeerError { error, .. } => panic!("seed {seed}: {error:?}"),
            }
        }
        let registered = matches!(assoc.state(), State::Registered { .. });
        if registered && adds_left > 0 && rng.chance(30) {
            adds_left -= 1;
            let id = mgc.send_request(
                ms(now),
                mg_addr,
                request("C=${A=$ {M{L{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}"),
            );
            outstanding.insert(id, "add");
        }
        if adds_left == 0 && outstanding.is_empty() && !subtracts_sent {
            subtracts_sent = true;
            for c in contexts.drain(..) {
                let id = mgc.send_request(ms(now), mg_addr, request(&format!("C={c}{{S=*}}")));
                outstanding.insert(id, "subtract");
            }
        }
        if subtracts_sent && outstanding.is_empty() {
            break;
        }
        // MG: hand requests to the (sometimes slow) model.
        while let Some(e) = assoc.poll_event() {
            if let AssocEvent::Request { from, request } = e {
                *executed.entry(request.id).or_default() += 1;
                let delay = if rng.chance(20) {
                    100 + rng.next() % 400
                } else {
                    0
                };
                seq += 1;
                work.insert((now + delay, seq), (from, request));
            }
        }
        while let Some((&(at, s), _)) = work.iter().next() {
            if at > now {
                break;
            }
            let (from, req) = work.remove(&(at, s)).unwrap();
            let (r, _) = mg.execute(ms(now), &req);
            assoc.reply(ms(now), from, req.id, r);
        }
        // Send what was produced in this round before time moves on.
        while let Some(t) = assoc.poll_transmit() {
            send(&mut wire, &mut rng, &mut seq, now, t.to, t.bytes);
        }
        while let Some(t) = mgc.poll_transmit() {
            send(&mut wire, &mut rng, &mut seq, now, t.to, t.bytes);
        }
        // Advance virtual time to the next thing that happens.
        let next = [
            wire.keys().next().map(|k| k.0),
            work.keys().next().map(|k| k.0),
            assoc.poll_timeout().map(|t| t.as_millis()),
            mgc.poll_timeout().map(|t| t.as_millis()),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + 10);
        now = next.max(now);
        let due: Vec<(u64, u64)> = wire.range(..=(now, u64::MAX)).map(|(k, _)| *k).collect();
        for k in due {
            let (to, bytes) = wire.remove(&k).unwrap();
            if to == mg_addr {
                assoc.handle_datagram(ms(now), mgc_addr, &bytes);
            } else {
                mgc.handle_message(ms(now), mg_addr, &bytes);
            }
        }
        assoc.handle_timeout(ms(now));
        mgc.handle_timeout(ms(now));
        // Loop guard: something must progress.
        if assoc.poll_timeout().is_none()
            && mgc.poll_timeout().is_none()
            && wire.is_empty()
            && work.is_empty()
        {
            now += 10;
        }
    }
    assert!(
        subtracts_sent && outstanding.is_empty(),
        "seed {seed}: did not finish"
    );
    for (id, n) in &executed {
        assert_eq!(*n, 1, "seed {seed}: transaction {id} executed {n} times");
    }
    assert_eq!(executed.len(), 24, "seed {seed}: 12 adds + 12 subtracts");
    assert!(mg.contexts().is_empty(), "seed {seed}");
    assert_eq!(mg.realms().in_use("core"), 0, "seed {seed}");
    let c = assoc.transactions().counters();
    (
        c.pendings_sent,
        c.duplicate_requests + c.duplicate_in_progress,
    )
}

#[test]
fn lossy_channel_many_seeds() {
    let seeds = match std::env::var("SIM_SEED") {
        Ok(s) => s.parse().unwrap()..s.parse::<u64>().unwrap() + 1,
        Err(_) => 0..300,
    };
    let (mut pendings, mut duplicates) = (0, 0);
    let many = seeds.end - seeds.start > 1;
    for seed in seeds {
        let (p, d) = simulate(seed);
        pendings += p;
        duplicates += d;
    }
    if many {
        assert!(
            pendings > 100,
            "slow executions produced Pendings ({pendings})"
        );
        assert!(
            duplicates > 100,
            "duplicates were answered from the cache ({duplicates})"
        );
    }
}
