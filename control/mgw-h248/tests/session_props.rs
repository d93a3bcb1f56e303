//! Property test of the whole MG control path (the body of the `h248_session` fuzz target, run
//! under proptest on stable): a registered association plus the MG model, fed sequences of
//! mutated real messages and timer advances. Nothing panics, everything we send parses, and
//! once the MGC clears every context no port is left allocated.

use proptest::prelude::*;

use mgw_core::time::Instant;
use mgw_h248::h248::association::{AssocEvent, Association, AssociationConfig};
use mgw_h248::h248::ast::Mid;
use mgw_h248::h248::mg::{Mg, MgConfig};
use mgw_h248::h248::parse_message;
use mgw_h248::procedures::Realms;

const PEER_FP: &str = "SHA-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:5E:1B:82:4F:66:9A:37:C6:61:AD:51:9E";

fn seeds() -> Vec<String> {
    vec![
        include_str!("../../../fuzz/corpus-seed/h248/add_tls_msrp.txt").to_owned(),
        include_str!("../../../fuzz/corpus-seed/h248/modify_subtract.txt").to_owned(),
        include_str!("../../../fuzz/corpus-seed/h248/t38_dtls.txt").to_owned(),
        format!("!/3 [127.0.0.2]:2944 T=20{{C=${{A=$ {{M{{ST=1{{O{{ipdc/realm=access}},R{{\nv=0\nc=IN IP4 198.51.100.1\nm=message 7000 TCP/TLS/MSRP *\na=setup:passive\na=fingerprint:{PEER_FP}\n}}}}}}}},A=$ {{M{{L{{\nv=0\nm=message $ TCP/MSRP *\n}}}}}}}}}}"),
        "!/3 [127.0.0.2]:2944 T=21{C=1{MV=ip/3,S=ip/1}}".to_owned(),
        "!/3 [127.0.0.2]:2944 T=22{C=2{MF=*{M{O{MO=IN}}},O-S=ip/9,S=*}}".to_owned(),
        "!/3 [127.0.0.2]:2944 T=23{C=*{AV=*{AT{M,SA}}}}".to_owned(),
        "!/3 [127.0.0.2]:2944 K{1-3} PN=1{}".to_owned(),
    ]
}

/// Returns the most contexts alive at once.
fn run(inputs: &[(u8, Vec<u8>)]) -> Result<usize, TestCaseError> {
    let mgc: std::net::SocketAddr = "127.0.0.2:2944".parse().unwrap();
    let mut a = Association::new(
        AssociationConfig {
            mgcs: vec![mgc],
            ..AssociationConfig::default()
        },
        Mid::Ip {
            addr: "127.0.0.1".parse().unwrap(),
            port: Some(2944),
        },
        1,
        0,
        Instant::ZERO,
    );
    a.handle_timeout(Instant::ZERO);
    a.handle_datagram(
        Instant::ZERO,
        mgc,
        b"!/3 [127.0.0.2]:2944 P=1{C=-{SC=ROOT}}",
    );
    let mut realms = Realms::default();
    realms.add("access", "192.0.2.1".parse().unwrap(), 40000, 40015);
    realms.add("core", "10.0.0.1".parse().unwrap(), 50000, 50015);
    let mut mg = Mg::new(MgConfig::default(), realms, "SHA-256 AA:BB".into());
    let mut now = 0u64;
    let mut most = 0;
    let step = |a: &mut Association, mg: &mut Mg, t: Instant, msg: &[u8]| {
        a.handle_timeout(t);
        a.handle_datagram(t, mgc, msg);
        while let Some(e) = a.poll_event() {
            if let AssocEvent::Request { from, request } = e {
                let (r, _) = mg.execute(t, &request);
                a.reply(t, from, request.id, r);
            }
        }
        let mut bad = None;
        while let Some(tx) = a.poll_transmit() {
            if let Err(e) = parse_message(&tx.bytes) {
                bad = Some(format!("{e}: {}", String::from_utf8_lossy(&tx.bytes)));
            }
        }
        bad
    };
    for (dt, msg) in inputs {
        now += u64::from(*dt) * 50;
        if let Some(b) = step(&mut a, &mut mg, Instant::from_millis(now), msg) {
            return Err(TestCaseError::fail(b));
        }
        most = most.max(mg.contexts().len());
    }
    let t = Instant::from_millis(now + 1);
    step(
        &mut a,
        &mut mg,
        t,
        b"!/3 [127.0.0.2]:2944 T=4000000000{C=*{S=*}}",
    );
    prop_assert!(mg.contexts().is_empty());
    prop_assert_eq!(mg.realms().in_use("access"), 0);
    prop_assert_eq!(mg.realms().in_use("core"), 0);
    Ok(most)
}

#[test]
fn unmutated_seeds_build_and_tear_down_contexts() {
    let inputs: Vec<(u8, Vec<u8>)> = seeds().into_iter().map(|s| (1, s.into_bytes())).collect();
    let most = run(&inputs).unwrap();
    assert!(most >= 2, "the seeds create contexts ({most})");
}

fn mutated() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (
        0u8..4,
        0..seeds().len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 0..4),
    )
        .prop_map(|(dt, i, edits)| {
            let mut d = seeds()[i].clone().into_bytes();
            for (at, b, op) in edits {
                if d.is_empty() {
                    break;
                }
                let k = at.index(d.len());
                match op {
                    0 => d[k] = b,
                    1 => {
                        d.remove(k);
                    }
                    2 => d.insert(k, b),
                    _ => d.truncate(k),
                }
            }
            (dt, d)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn session_never_panics_emits_parseable_text_and_frees_ports(
        inputs in prop::collection::vec(mutated(), 1..12)
    ) {
        run(&inputs)?;
    }
}
