//! MG model tests, grouped by context state.

use super::*;
use crate::h248::parse_message;

const FP: &str = "SHA-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
const PEER_FP: &str = "SHA-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:5E:1B:82:4F:66:9A:37:C6:61:AD:51:9E";

fn mg() -> Mg {
    let mut r = Realms::default();
    r.add("access", "192.0.2.1".parse().unwrap(), 40000, 40009);
    r.add("core", "10.0.0.1".parse().unwrap(), 50000, 50009);
    Mg::new(MgConfig::default(), r, FP.into())
}

fn req(body: &str) -> TransactionRequest {
    let text = format!("!/3 [127.0.0.2]:2944 T=1{{{body}}}");
    let m = parse_message(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let MessageBody::Transactions(mut t) = m.body else {
        panic!()
    };
    let Transaction::Request(r) = t.remove(0) else {
        panic!()
    };
    r
}

fn run(mg: &mut Mg, ms: u64, body: &str) -> (Vec<ActionReply>, Vec<LegChange>) {
    let (r, ch) = mg.execute(Instant::from_millis(ms), &req(body));
    let ReplyResult::Actions(a) = r else { panic!() };
    (a, ch)
}

fn add_call(mg: &mut Mg) -> (u32, String, String, Vec<LegChange>) {
    let body = format!(
        "C=${{A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=access}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/TLS/MSRP *\na=fingerprint:$\n}},R{{\nv=0\nc=IN IP4 198.51.100.10\nm=message 7394 TCP/TLS/MSRP *\na=setup:active\na=fingerprint:{PEER_FP}\n}}}}}},E=2{{tcp/ef,tls/ef}}}},A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=core}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}}}}}}"
    );
    let (a, ch) = run(mg, 0, &body);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].error, None, "{a:?}");
    let ContextId::Id(c) = a[0].context else {
        panic!("{a:?}")
    };
    let names: Vec<String> = a[0]
        .replies
        .iter()
        .map(|r| match r {
            CommandReply::Add(x) => x.termination.0.clone(),
            _ => panic!(),
        })
        .collect();
    (c, names[0].clone(), names[1].clone(), ch)
}

// ---- no context → context with two legs ----

#[test]
fn add_creates_context_terminations_and_legs() {
    let mut m = mg();
    let (c, t1, t2, ch) = add_call(&mut m);
    assert_eq!((t1.as_str(), t2.as_str()), ("ip/1", "ip/2"));
    assert_eq!(m.contexts()[&c].terminations.len(), 2);
    assert_eq!(ch.len(), 2);
    let LegChange::Install {
        spec, termination, ..
    } = &ch[0]
    else {
        panic!()
    };
    assert_eq!(termination, "ip/1");
    assert_eq!(spec.local.to_string(), "192.0.2.1:40000");
    let t = &m.contexts()[&c].terminations["ip/1"];
    let local = t.streams[&1].local.as_deref().unwrap();
    assert!(local.contains("m=message 40000 TCP/TLS/MSRP *"));
    assert!(local.contains(&format!("a=fingerprint:{FP}")));
    assert!(local.contains("a=setup:passive"));
    assert_eq!(m.realms().in_use("core"), 1);
}

#[test]
fn add_reply_carries_local_sdp() {
    let mut m = mg();
    let body = "C=${A=$ {M{O{ipdc/realm=core},L{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}";
    let (a, _) = run(&mut m, 0, body);
    let CommandReply::Add(r) = &a[0].replies[0] else {
        panic!()
    };
    let local = r.audit.media.as_ref().unwrap().streams[0]
        .local
        .as_deref()
        .unwrap();
    // The MGW's own a=path follows (RFC 4975 §8.1; its session-id is generated).
    let (head, path) = local.split_once("\na=path:").unwrap();
    assert_eq!(
        head,
        "v=0\nc=IN IP4 10.0.0.1\nm=message 50000 TCP/MSRP *\na=setup:passive\na=connection:new"
    );
    assert!(path.starts_with("msrp://10.0.0.1:50000/") && path.ends_with(";tcp"));
}

#[test]
fn failed_add_in_new_context_leaves_nothing_behind() {
    let mut m = mg();
    let body = "C=${A=$ {M{O{ipdc/realm=core},L{\nv=0\nm=message $ TCP/MSRP *\n}}},A=$ {M{O{foo/bar=1},L{\nv=0\nm=message $ TCP/MSRP *\n}}}}";
    let (a, _) = run(&mut m, 0, body);
    assert_eq!(a[0].error.as_ref().unwrap().code, 440);
    // The first Add succeeded and stays (commands are not rolled back, §8.2.1).
    assert_eq!(m.contexts().len(), 1);
    let body = "C=${A=$ {M{O{foo/bar=1},L{\nv=0\nm=message $ TCP/MSRP *\n}}}}";
    let (a, _) = run(&mut m, 0, body);
    assert_eq!(a[0].error.as_ref().unwrap().code, 440);
    assert_eq!(a[0].context, ContextId::Choose);
    assert_eq!(m.contexts().len(), 1, "no empty context left");
    assert_eq!(m.realms().in_use("core"), 1);
}

// ---- established context ----

#[test]
fn modify_remote_updates_the_leg() {
    let mut m = mg();
    let (c, _, t2, _) = add_call(&mut m);
    let body = format!(
        "C={c}{{MF={t2}{{M{{ST=1{{R{{\nv=0\nc=IN IP4 10.5.5.5\nm=message 2855 TCP/MSRP *\na=setup:passive\n}}}}}}}}}}"
    );
    let (a, ch) = run(&mut m, 10, &body);
    assert_eq!(a[0].error, None, "{a:?}");
    let LegChange::Update { spec, .. } = &ch[0] else {
        panic!("{ch:?}")
    };
    assert_eq!(spec.remote, Some("10.5.5.5:2855".parse().unwrap()));
    assert_eq!(spec.local.to_string(), "10.0.0.1:50000", "port kept");
    assert_eq!(spec.tcp_role, Some(crate::procedures::TcpRole::Active));
    assert_eq!(m.realms().in_use("core"), 1);
}

#[test]
fn modify_moving_a_leg_to_another_realm_is_501_and_keeps_the_leg() {
    let mut m = mg();
    let (c, _, t2, _) = add_call(&mut m);
    let body = format!(
        "C={c}{{MF={t2}{{M{{ST=1{{O{{ipdc/realm=access}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}}}}}}"
    );
    let (a, ch) = run(&mut m, 10, &body);
    assert_eq!(a[0].error.as_ref().map(|e| e.code), Some(501), "{a:?}");
    assert!(ch.is_empty(), "nothing sent to the worker: {ch:?}");
    let t = &m.contexts()[&c].terminations[&t2];
    let leg = t.streams[&1].leg.as_ref().unwrap();
    assert_eq!(leg.local.to_string(), "10.0.0.1:50000", "old address kept");
    assert_eq!(m.realms().in_use("core"), 1, "old port still held");
    assert_eq!(m.realms().in_use("access"), 1, "no new port leaked");
}

#[test]
fn modify_errors() {
    let mut m = mg();
    let (c, _, _, _) = add_call(&mut m);
    let code = |m: &mut Mg, body: &str| run(m, 1, body).0[0].error.as_ref().map(|e| e.code);
    assert_eq!(code(&mut m, "C=999{MF=ip/1}"), Some(411));
    assert_eq!(code(&mut m, &format!("C={c}{{MF=ip/77}}")), Some(430));
    assert_eq!(code(&mut m, &format!("C={c}{{MF=rtp/*}}")), Some(431));
    assert_eq!(
        code(&mut m, &format!("C={c}{{MF=ip/1{{E=3{{zz/top}}}}}}")),
        Some(440)
    );
    assert_eq!(
        code(&mut m, &format!("C={c}{{MF=ip/1{{E=3{{tcp/nope}}}}}}")),
        Some(451)
    );
    assert_eq!(
        code(&mut m, &format!("C={c}{{MF=ip/1{{M{{O{{tcp/zz=1}}}}}}}}")),
        Some(445)
    );
    assert_eq!(
        code(
            &mut m,
            &format!("C={c}{{MF=ip/1{{M{{O{{ipnapt/latch=maybe}}}}}}}}")
        ),
        Some(449)
    );
    assert_eq!(
        code(&mut m, &format!("C={c}{{MF=ip/1{{DM=dm1}}}}")),
        Some(501)
    );
    assert_eq!(
        code(&mut m, &format!("C={c}{{N=ip/1{{OE=1{{tcp/ef}}}}}}")),
        Some(421)
    );
    assert_eq!(code(&mut m, "C=-{A=$}"), Some(421));
    assert_eq!(code(&mut m, &format!("C={c}{{A=ip/1}}")), Some(433));
    // The context is untouched by all of that.
    assert_eq!(m.contexts()[&c].terminations.len(), 2);
}

#[test]
fn optional_command_failure_does_not_stop_the_action() {
    let mut m = mg();
    let (c, _, _, _) = add_call(&mut m);
    let (a, _) = run(&mut m, 1, &format!("C={c}{{O-MF=ip/77,MF=ip/1}}"));
    assert_eq!(a[0].error, None);
    assert_eq!(a[0].replies.len(), 2);
    let CommandReply::Modify(r) = &a[0].replies[0] else {
        panic!()
    };
    assert_eq!(r.audit.error.as_ref().unwrap().code, 430);
}

#[test]
fn too_many_terminations_is_434_and_ports_run_out_with_510() {
    let mut m = Mg::new(
        MgConfig {
            max_terminations_per_context: 1,
            ..MgConfig::default()
        },
        {
            let mut r = Realms::default();
            r.add("core", "10.0.0.1".parse().unwrap(), 50000, 50000);
            r
        },
        FP.into(),
    );
    let add = "A=$ {M{L{\nv=0\nm=message $ TCP/MSRP *\n}}}";
    let (a, _) = run(&mut m, 0, &format!("C=${{{add},{add}}}"));
    assert_eq!(a[0].error.as_ref().unwrap().code, 434);
    let (a, _) = run(&mut m, 0, &format!("C=${{{add}}}"));
    assert_eq!(a[0].error.as_ref().unwrap().code, 510);
}

#[test]
fn add_beyond_max_terminations_is_510_and_a_subtract_frees_room() {
    let mut r = Realms::default();
    r.add("core", "10.0.0.1".parse().unwrap(), 50000, 50009);
    let mut m = Mg::new(
        MgConfig {
            max_terminations: 3,
            ..MgConfig::default()
        },
        r,
        FP.into(),
    );
    let add = "A=$ {M{L{\nv=0\nm=message $ TCP/MSRP *\n}}}";
    let (a, _) = run(&mut m, 0, &format!("C=${{{add},{add}}}"));
    assert_eq!(a[0].error, None, "{a:?}");
    let ContextId::Id(c) = a[0].context else {
        panic!("{a:?}")
    };
    // The MG holds 2 of 3: a new context with two more gets one, then 510.
    let (a, ch) = run(&mut m, 0, &format!("C=${{{add},{add}}}"));
    let err = a[0]
        .error
        .as_ref()
        .expect("the fourth termination is refused");
    assert_eq!(err.code, 510, "{err:?}");
    // H.248.1 §8.2.1: the Add before the failing one stands; the MG is at its limit.
    assert_eq!(a[0].replies.len(), 1, "{a:?}");
    assert_eq!(m.contexts().len(), 2);
    assert_eq!(m.realms().in_use("core"), 3);
    assert_eq!(
        ch.iter()
            .filter(|c| matches!(c, LegChange::Install { .. }))
            .count(),
        1,
        "{ch:?}"
    );
    let (a, _) = run(&mut m, 0, &format!("C=${{{add}}}"));
    assert_eq!(a[0].error.as_ref().map(|e| e.code), Some(510), "{a:?}");
    // A Subtract frees room again.
    let (a, _) = run(&mut m, 0, &format!("C={c}{{S=*}}"));
    assert_eq!(a[0].error, None, "{a:?}");
    let (a, _) = run(&mut m, 0, &format!("C=${{{add},{add}}}"));
    assert_eq!(a[0].error, None, "{a:?}");
}

#[test]
fn armed_event_produces_notify() {
    let mut m = mg();
    let (c, t1, t2, _) = add_call(&mut m);
    let n = m
        .observe(
            &t1,
            "tcp/ef",
            vec![PropertyParm::eq("cause", "timeout")],
            None,
        )
        .expect("armed");
    assert_eq!(n.context, ContextId::Id(c));
    let Command::Notify(nr) = &n.commands[0].command else {
        panic!()
    };
    assert_eq!(nr.observed_events.request_id, 2);
    assert_eq!(
        m.observe(&t2, "tcp/ef", vec![], None),
        None,
        "not armed on t2"
    );
    assert_eq!(m.observe(&t1, "tls/sr", vec![], None), None, "not armed");
}

#[test]
fn audit_root_packages_and_termination_media() {
    let mut m = mg();
    let (a, _) = run(&mut m, 0, "C=-{AV=ROOT{AT{PG}}}");
    let CommandReply::AuditValue(r) = &a[0].replies[0] else {
        panic!()
    };
    let pg = r.audit.packages.as_ref().unwrap();
    assert!(pg.iter().any(|p| p.name == "ipdc"));
    let (c, t1, _, _) = add_call(&mut m);
    let (a, _) = run(&mut m, 5, &format!("C={c}{{AV={t1}{{AT{{M,SA}}}}}}"));
    let CommandReply::AuditValue(r) = &a[0].replies[0] else {
        panic!()
    };
    assert!(r.audit.media.as_ref().unwrap().streams[0].remote.is_some());
    assert!(r.audit.statistics.is_some());
}

// ---- context → no context ----

#[test]
fn subtract_releases_legs_returns_statistics_and_deletes_context() {
    let mut m = mg();
    let (c, t1, _, _) = add_call(&mut m);
    m.update_stats(
        &t1,
        TerminationStats {
            octets_sent: 1234,
            octets_received: 5678,
        },
    );
    let (a, ch) = run(&mut m, 2500, &format!("C={c}{{S={t1},S=*}}"));
    assert_eq!(a[0].error, None, "{a:?}");
    assert_eq!(a[0].replies.len(), 2);
    let CommandReply::Subtract(r) = &a[0].replies[0] else {
        panic!()
    };
    let st = r.audit.statistics.as_ref().unwrap();
    assert_eq!(st[0].name, "nt/os");
    assert_eq!(st[0].values, vec!["1234"]);
    assert_eq!(st[1].values, vec!["5678"]);
    assert_eq!(st[2].values, vec!["2500"]);
    assert_eq!(
        ch.iter()
            .filter(|c| matches!(c, LegChange::Release { .. }))
            .count(),
        2
    );
    assert!(m.contexts().is_empty());
    assert_eq!(m.realms().in_use("access"), 0);
    assert_eq!(m.realms().in_use("core"), 0);
    let (a, _) = run(&mut m, 2600, &format!("C={c}{{S={t1}}}"));
    assert_eq!(a[0].error.as_ref().unwrap().code, 411);
}

#[test]
fn subtract_all_contexts() {
    let mut m = mg();
    add_call(&mut m);
    add_call(&mut m);
    assert_eq!(m.contexts().len(), 2);
    let (a, ch) = run(&mut m, 1, "C=*{S=*{AT{}}}");
    assert_eq!(a[0].error, None);
    assert_eq!(a[0].replies.len(), 4);
    assert_eq!(ch.len(), 4);
    assert!(m.contexts().is_empty());
}

#[test]
fn move_between_contexts() {
    let mut m = mg();
    let (c1, t1, _, _) = add_call(&mut m);
    let (c2, _, _, _) = add_call(&mut m);
    let (a, ch) = run(&mut m, 1, &format!("C={c2}{{MV={t1}}}"));
    assert_eq!(a[0].error, None, "{a:?}");
    assert!(matches!(&ch[0], LegChange::Update { context, .. } if *context == c2));
    assert_eq!(m.contexts()[&c1].terminations.len(), 1);
    assert_eq!(m.contexts()[&c2].terminations.len(), 3);
}

#[test]
fn wildcard_matching() {
    assert!(wildcard_match("*", "ip/1"));
    assert!(wildcard_match("ip/*", "ip/12"));
    assert!(!wildcard_match("rtp/*", "ip/12"));
    assert!(wildcard_match("ip/1", "ip/1"));
    assert!(wildcard_match("i*/1*", "ip/12"));
}

#[test]
fn signals_are_checked_and_passed_to_the_data_plane() {
    let mut m = mg();
    let (c, t1, _, _) = add_call(&mut m);
    let (a, ch) = run(&mut m, 1, &format!("C={c}{{MF={t1}{{SG{{tls/es}}}}}}"));
    assert_eq!(a[0].error, None);
    assert_eq!(
        ch,
        vec![LegChange::Signal {
            context: c,
            termination: t1.clone(),
            name: "tls/es".into()
        }]
    );
    let (a, _) = run(&mut m, 1, &format!("C={c}{{MF={t1}{{SG{{tls/bogus}}}}}}"));
    assert_eq!(a[0].error.as_ref().unwrap().code, 452);
    let (a, _) = run(&mut m, 1, &format!("C={c}{{MF={t1}{{SA{{nt/zz}}}}}}"));
    assert_eq!(a[0].error.as_ref().unwrap().code, 453);
}

/// Issue 12 finding 2: the backtracking matcher took exponential time on a many-star pattern
/// against a long name that does not match (it hung the control thread). The two-pointer glob is
/// O(pattern * name); this case finishes at once.
#[test]
fn wildcard_match_many_stars_long_name_is_linear() {
    let name = format!("{}c", "a".repeat(2000));
    let pattern = format!("{}b", "a*".repeat(16));
    assert!(!wildcard_match(&pattern, &name));
    let name_b = format!("{}b", "a".repeat(2000));
    assert!(wildcard_match(&pattern, &name_b));
    assert!(wildcard_match("*a*", "bab"));
    assert!(!wildcard_match("a*b", "ab c"));
    assert!(wildcard_match("a**b", "ab"));
    assert!(!wildcard_match("", "x"));
    assert!(wildcard_match("", ""));
}

/// Issue 12 finding 12 (control side): a Media descriptor with many Stream descriptors grew a
/// termination's streams without bound; over the bound the command is refused with 510.
#[test]
fn too_many_streams_on_a_termination_are_refused_510() {
    let mut m = mg();
    let (c, t1, _, _) = add_call(&mut m);
    let streams: Vec<String> = (2..=64).map(|i| format!("ST={i}{{O{{MO=SR}}}}")).collect();
    let (a, _) = run(
        &mut m,
        1,
        &format!("C={c}{{MF={t1}{{M{{{}}}}}}}", streams.join(",")),
    );
    assert_eq!(a[0].error.as_ref().map(|e| e.code), Some(510), "{a:?}");
    assert_eq!(m.contexts()[&c].terminations[&t1].streams.len(), 1);
}

/// The name the MG chooses for `$` stays a valid (at most 64-character) termination ID: a prefix
/// that leaves no room for "/n" is refused with 410.
#[test]
fn a_choose_prefix_too_long_for_a_valid_name_is_refused_410() {
    let mut m = mg();
    let add = |p: &str| {
        format!("C=${{A={p}$ {{M{{O{{ipdc/realm=core}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}}}}")
    };
    let (a, _) = run(&mut m, 0, &add(&format!("{}/", "x".repeat(53))));
    assert_eq!(a[0].error, None, "{a:?}");
    let CommandReply::Add(r) = &a[0].replies[0] else {
        panic!("{a:?}")
    };
    assert!(r.termination.0.len() <= 64, "{}", r.termination.0);
    let (a, _) = run(&mut m, 0, &add(&format!("{}/", "x".repeat(54))));
    assert_eq!(a[0].error.as_ref().map(|e| e.code), Some(410), "{a:?}");
}
