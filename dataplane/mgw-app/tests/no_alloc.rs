//! Proves the fast path allocates nothing: after set-up, parsing MSRP (with rewriting), framing
//! and reassembling BFCP, and accounting UDPTL make zero heap allocations.

use mgw_core::testkit::CountingAllocator;

use core::time::Duration;
use mgw_app::bfcp::{
    self, FloorRequest, Fragmenter, Header, MessageWriter, Primitive, Pushed, Reassembler,
    ReassemblyConfig, StreamFramer,
};
use mgw_app::msrp::{
    ByteRange, LegSide, MsrpConfig, MsrpEvent, MsrpLegPaths, MsrpParser, MsrpResponse,
    MsrpRewriter, MsrpSend,
};
use mgw_app::udptl::{ErrorRecovery, IfpList, UdptlConfig, UdptlFlow, UdptlRepr};
use mgw_core::time::Instant;

/// Counts allocations per thread while switched on (see `mgw_core::testkit`).
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn counted<R>(f: impl FnOnce() -> R) -> (R, u64) {
    CountingAllocator::count(f)
}

#[test]
fn fast_paths_do_not_allocate() {
    // ---- set-up (allowed to allocate) ----
    let gw_a = "msrp://192.0.2.2:2855/gwA;tcp";
    let ue_a = "msrp://198.51.100.7:7000/ueA;tcp";
    let mut stream = Vec::new();
    let body = "y\r\n-------tx0".repeat(20);
    for i in 0..50 {
        let (tid, mid) = (format!("tx{i:06}"), format!("m{i}"));
        MsrpSend::new(&tid, gw_a, ue_a, &mid)
            .body("text/plain", body.as_bytes())
            .write(&mut stream)
            .unwrap();
    }
    let rw = MsrpRewriter::new(
        MsrpLegPaths {
            local_uri: gw_a.into(),
            remote_path: ue_a.into(),
        },
        MsrpLegPaths {
            local_uri: b"msrp://192.0.2.1:2855/gwB;tcp".to_vec(),
            remote_path: b"msrp://203.0.113.9:7001/ueB;tcp".to_vec(),
        },
        true,
    )
    .unwrap();
    let mut parser = MsrpParser::new(MsrpConfig::default());
    let mut out = vec![0u8; 4096];

    // A FloorRequest sized by one 200-octet attribute.
    let mut msg = Vec::new();
    let mut w = MessageWriter::new(&mut msg, &Header::new(1, 1, 2, 3), Primitive::FloorRequest);
    w.user_uri(&[b'u'; 200]);
    w.finish().unwrap();
    let bfcp_stream: Vec<u8> = msg.iter().copied().cycle().take(msg.len() * 20).collect();
    let mut framer = StreamFramer::new(1024);
    let mut reasm = Reassembler::new(ReassemblyConfig {
        slots: 2,
        max_message: 1024,
        timeout: Duration::from_secs(1),
    });
    let mut frag_buf = [0u8; 64];

    let sec: [&[u8]; 2] = [&[0x04], &[0x02]];
    let mut dgrams = Vec::new();
    for s in 0..100u16 {
        let u = UdptlRepr {
            seq_number: s * 2,
            primary_ifp: &[0x06],
            error_recovery: ErrorRecovery::Redundancy(IfpList::Items(&sec)),
        };
        let mut b = vec![0u8; u.buffer_len()];
        u.emit(&mut b).unwrap();
        dgrams.push(b);
    }
    let mut flow = UdptlFlow::new(UdptlConfig::default());

    // ---- steady state: no allocation ----
    let (frames, allocs) = counted(|| {
        let mut frames = 0;
        for chunk in stream.chunks(97) {
            let mut f = parser.feed(chunk);
            while let Some(ev) = f.next_event().unwrap() {
                match ev {
                    MsrpEvent::HeadersEnd { .. } => {
                        rw.rewrite_head(
                            LegSide::A,
                            f.parser().head(),
                            f.parser().frame(),
                            &mut out,
                        )
                        .unwrap();
                    }
                    MsrpEvent::End { continuation } => {
                        f.parser().write_end_line(continuation, &mut out).unwrap();
                        frames += 1;
                    }
                    _ => {}
                }
            }
        }
        frames
    });
    assert_eq!((frames, allocs), (50, 0), "MSRP parse + rewrite allocated");

    let (msgs, allocs) = counted(|| {
        let mut k = 0;
        for chunk in bfcp_stream.chunks(100) {
            let mut f = framer.feed(chunk);
            while f.next_message().unwrap().is_some() {
                k += 1;
            }
        }
        let mut complete = 0;
        for round in 0..10u64 {
            let mut fr = Fragmenter::new(&msg, 64).unwrap();
            while let Some(r) = fr.next_fragment(&mut frag_buf) {
                let len = r.unwrap();
                if let Pushed::Complete(_) = reasm
                    .push(Instant::from_millis(round), &frag_buf[..len])
                    .unwrap()
                {
                    complete += 1;
                }
            }
        }
        (k, complete)
    });
    assert_eq!(
        (msgs, allocs),
        ((20, 10), 0),
        "BFCP framing/fragmentation/reassembly allocated"
    );

    let (lost, allocs) = counted(|| {
        for d in &dgrams {
            flow.on_datagram(d).unwrap();
        }
        flow.stats().lost
    });
    assert_eq!((lost, allocs), (99, 0), "UDPTL accounting allocated");
    assert_eq!(
        flow.stats().recovered,
        99,
        "every odd seq is the newest secondary of the next packet"
    );
}

#[test]
fn writers_append_without_allocating() {
    let gw_a = "msrp://192.0.2.2:2855/gwA;tcp";
    let ue_a = "msrp://198.51.100.7:7000/ueA;tcp";
    let body = [b'z'; 300];
    let mut out = Vec::with_capacity(64 * 1024);
    let (n, allocs) = counted(|| {
        let mut tid = *b"t0000000";
        for i in 0..50u8 {
            tid[7] = b'0' + i % 10;
            tid[6] = b'0' + i / 10;
            MsrpSend::new(&tid, gw_a, ue_a, &tid)
                .byte_range(ByteRange::whole(body.len() as u64))
                .body("text/plain", &body)
                .write(&mut out)
                .unwrap();
            MsrpResponse::ok(&tid, ue_a, gw_a).write(&mut out).unwrap();
            let h = Header::new(1, 1, u16::from(i), 3);
            bfcp::floor_request(&mut out, &h, &FloorRequest::new(&[1])).unwrap();
            bfcp::hello(&mut out, &h).unwrap();
        }
        out.len()
    });
    assert!(n > 50 * 300);
    assert_eq!(allocs, 0, "writing into a reserved buffer allocated");
}
