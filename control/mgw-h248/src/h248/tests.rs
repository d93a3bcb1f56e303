//! Codec tests: real messages, error positions, emit→parse round trips, and no panics on any input.

use super::*;
use proptest::prelude::*;

const SEEDS: &[(&str, &str)] = &[
    (
        "sc_restart",
        include_str!("../../../../fuzz/corpus-seed/h248/sc_restart.txt"),
    ),
    (
        "sc_reply_compact",
        include_str!("../../../../fuzz/corpus-seed/h248/sc_reply_compact.txt"),
    ),
    (
        "sc_reply_mgcid",
        include_str!("../../../../fuzz/corpus-seed/h248/sc_reply_mgcid.txt"),
    ),
    (
        "add_tls_msrp",
        include_str!("../../../../fuzz/corpus-seed/h248/add_tls_msrp.txt"),
    ),
    (
        "add_reply",
        include_str!("../../../../fuzz/corpus-seed/h248/add_reply.txt"),
    ),
    (
        "notify",
        include_str!("../../../../fuzz/corpus-seed/h248/notify.txt"),
    ),
    (
        "reply_errors",
        include_str!("../../../../fuzz/corpus-seed/h248/reply_errors.txt"),
    ),
    (
        "pending_ack",
        include_str!("../../../../fuzz/corpus-seed/h248/pending_ack.txt"),
    ),
    (
        "modify_subtract",
        include_str!("../../../../fuzz/corpus-seed/h248/modify_subtract.txt"),
    ),
    (
        "t38_dtls",
        include_str!("../../../../fuzz/corpus-seed/h248/t38_dtls.txt"),
    ),
    (
        "bfcp_audit_cap",
        include_str!("../../../../fuzz/corpus-seed/h248/bfcp_audit_cap.txt"),
    ),
];

fn parse(s: &str) -> Message {
    match parse_message(s.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("{e}\n{s}"),
    }
}

fn transactions(m: &Message) -> &[Transaction] {
    match &m.body {
        MessageBody::Transactions(t) => t,
        MessageBody::Error(_) => panic!("message error"),
    }
}

#[test]
fn every_seed_parses_and_round_trips_in_both_styles() {
    for (name, text) in SEEDS {
        let m = parse(text);
        for style in [Style::Pretty, Style::Compact] {
            let out = emit(&m, style);
            let back = parse_message(out.as_bytes())
                .unwrap_or_else(|e| panic!("{name} {style:?}: {e}\n{out}"));
            assert_eq!(back, m, "{name} {style:?}\n{out}");
        }
    }
}

#[test]
fn service_change_restart_fields() {
    let m = parse(SEEDS[0].1);
    assert_eq!(m.version, 3);
    assert_eq!(
        m.mid,
        Mid::Ip {
            addr: "127.0.0.1".parse().unwrap(),
            port: Some(2944)
        }
    );
    let Transaction::Request(r) = &transactions(&m)[0] else {
        panic!()
    };
    assert_eq!(r.id, 1);
    assert_eq!(r.actions[0].context, ContextId::Null);
    let Command::ServiceChange(sc) = &r.actions[0].commands[0].command else {
        panic!()
    };
    assert!(sc.termination.is_root());
    assert_eq!(sc.parms.method, Some(ServiceChangeMethod::Restart));
    assert_eq!(sc.parms.reason_code(), Some(901));
    assert_eq!(sc.parms.version, Some(3));
    assert_eq!(sc.parms.address, Some(ServiceChangeAddress::Port(2944)));
}

#[test]
fn add_with_sdp_keeps_local_and_remote_text() {
    let m = parse(SEEDS[3].1);
    let Transaction::Request(r) = &transactions(&m)[0] else {
        panic!()
    };
    assert_eq!(r.actions[0].context, ContextId::Choose);
    assert_eq!(r.actions[0].commands.len(), 2);
    let Command::Add(a) = &r.actions[0].commands[0].command else {
        panic!()
    };
    assert!(a.termination.is_choose());
    let st = &a.media.as_ref().unwrap().streams[0];
    assert_eq!(st.id, Some(1));
    let lc = st.local_control.as_ref().unwrap();
    assert_eq!(lc.mode, Some(StreamMode::SendRecv));
    assert_eq!(lc.reserve_value, Some(false));
    assert_eq!(lc.properties[0].name, "ipdc/realm");
    assert_eq!(lc.properties[0].single(), Some("access"));
    let remote = st.remote.as_deref().unwrap();
    assert!(remote.starts_with("v=0\n"));
    assert!(remote.ends_with("a=msrp-cema"));
    assert!(st
        .local
        .as_deref()
        .unwrap()
        .contains("m=message $ TCP/TLS/MSRP *"));
    let ev = a.events.as_ref().unwrap();
    assert_eq!(ev.request_id, Some(2));
    assert_eq!(ev.events.len(), 2);
}

#[test]
fn short_and_long_forms_and_case_give_the_same_tree() {
    let long = "MEGACO/3 [10.0.0.1]:2944 Transaction=12{Context=${Add=${Media{LocalControl{Mode=SendReceive}}}}}";
    let short = "!/3 [10.0.0.1]:2944 T=12{C=${A=${M{O{MO=SR}}}}}";
    let mixed = "megaco/3 [10.0.0.1]:2944 t=12{context=${a=${media{o{mode=sendreceive}}}}}";
    assert_eq!(parse(long), parse(short));
    assert_eq!(parse(long), parse(mixed));
}

#[test]
fn replies_errors_pending_and_acks() {
    let m = parse(SEEDS[6].1);
    let t = transactions(&m);
    let Transaction::Reply(r) = &t[0] else {
        panic!()
    };
    let ReplyResult::Actions(a) = &r.result else {
        panic!()
    };
    assert_eq!(a[0].error.as_ref().unwrap().code, 411);
    let Transaction::Reply(r) = &t[1] else {
        panic!()
    };
    assert_eq!(
        r.result,
        ReplyResult::Error(ErrorDescriptor::new(400, "Syntax error at line 3"))
    );
    let Transaction::Reply(r) = &t[2] else {
        panic!()
    };
    assert!(r.imm_ack_required);
    let m = parse(SEEDS[7].1);
    assert_eq!(transactions(&m)[0], Transaction::Pending(46));
    assert_eq!(
        transactions(&m)[1],
        Transaction::ResponseAck(vec![
            AckRange {
                first: 40,
                last: 42
            },
            AckRange {
                first: 45,
                last: 45
            }
        ])
    );
}

#[test]
fn segmented_reply_and_segment_reply() {
    let m = parse("!/3 [10.0.0.1]:2944 P=5/2/END{C=1{A=ip/1}} SM=5/2/END");
    let t = transactions(&m);
    let Transaction::Reply(r) = &t[0] else {
        panic!()
    };
    assert_eq!(
        r.segment,
        Some(Segment {
            number: 2,
            complete: true
        })
    );
    assert!(matches!(t[1], Transaction::SegmentReply(_)));
}

#[test]
fn syntax_error_reports_code_line_and_column() {
    let text = "MEGACO/3 [10.0.0.1]:2944\nTransaction = 5 {\n  Context = 1 {\n    Frobnicate = ip/1\n  }\n}\n";
    let e = parse_message(text.as_bytes()).unwrap_err();
    assert_eq!(e.code, 400);
    assert_eq!(e.line, 4);
    assert_eq!(e.column, 5);
    assert_eq!(&text[e.pos..e.pos + 10], "Frobnicate");
    assert_eq!(parse::salvage_request_ids(text.as_bytes()), vec![5]);
}

#[test]
fn version_and_unimplemented_errors_have_their_codes() {
    let e = parse_message(b"MEGACO/4 [10.0.0.1]:2944 T=1{C=-{}}").unwrap_err();
    assert_eq!(e.code, 406);
    let e = parse_message(b"!/3 [10.0.0.1]:2944 T=1{C=1{A=ip/1{MD{}}}}").unwrap_err();
    assert_eq!(e.code, 501);
    let e = parse_message(b"!/3 [10.0.0.1]:2944 T=1{C=1{A=ip/1{SG{SL=1{a/b}}}}}").unwrap_err();
    assert_eq!(e.code, 501);
}

/// Issue 12 finding 2 (the class): a termination ID is at most 64 characters (H.248.1 Annex
/// B.2), which also bounds what a wildcard match over installed names can cost.
#[test]
fn termination_ids_over_64_characters_are_syntax_errors() {
    let ok = format!("!/3 [10.0.0.1]:2944 T=1{{C=1{{S={}}}}}", "a".repeat(64));
    assert!(parse_message(ok.as_bytes()).is_ok());
    let long = format!("!/3 [10.0.0.1]:2944 T=1{{C=1{{S={}}}}}", "a".repeat(65));
    let e = parse_message(long.as_bytes()).unwrap_err();
    assert_eq!(e.code, 400);
    let star = format!("!/3 [10.0.0.1]:2944 T=1{{C=*{{S={}b}}}}", "a*".repeat(40));
    assert_eq!(parse_message(star.as_bytes()).unwrap_err().code, 400);
}

/// Found by the h248_parse fuzz target (fuzz/regressions/h248_parse/sdp_round_trip): the
/// emitter rewrote SDP line by line and so turned CRLF into LF, and re-parsing gave another tree.
#[test]
fn sdp_with_crlf_line_ends_round_trips_unchanged() {
    let text = "!/3 [10.0.0.1]:2944 T=1{C=${A=${M{L{\r\nv=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP *\n\r\na=x\r}}}}}";
    let m = parse(text);
    for style in [Style::Pretty, Style::Compact] {
        let back = parse(&emit(&m, style));
        assert_eq!(back, m, "{style:?}");
    }
}

#[test]
fn truncated_messages_are_syntax_errors() {
    let text = SEEDS[3].1;
    for cut in 0..text.trim_end().len() {
        if let Err(e) = parse_message(&text.as_bytes()[..cut]) {
            assert_eq!(e.code, 400, "cut at {cut}");
            assert!(e.pos <= cut);
        } else {
            panic!("truncated at {cut} parsed");
        }
    }
}

#[test]
fn sdp_close_brace_is_escaped() {
    let m = parse("!/3 [10.0.0.1]:2944 T=1{C=1{MF=ip/1{M{L{\na=x-odd:\\}\n}}}}}");
    let out = emit(&m, Style::Compact);
    assert!(out.contains("a=x-odd:\\}"));
    assert_eq!(parse(&out), m);
}

#[test]
fn compact_output_is_compact() {
    let m = parse(SEEDS[0].1);
    let out = emit(&m, Style::Compact);
    assert_eq!(
        out,
        "!/3 [127.0.0.1]:2944 T=1{C=-{SC=ROOT{SV{MT=RS,RE=\"901 Cold Boot\",AD=2944,PF=ETSI_IMS_ALG/1,V=3}}}}"
    );
}

// ---- property tests ----

fn word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,6}"
}

fn pkgd() -> impl Strategy<Value = String> {
    (word(), word()).prop_map(|(a, b)| format!("{a}/{b}"))
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z0-9_.-]{1,8}", "[A-Za-z0-9 :;,=]{1,12}",]
}

fn termination() -> impl Strategy<Value = TerminationId> {
    prop_oneof![
        Just(TerminationId::root()),
        Just(TerminationId::choose()),
        Just(TerminationId("*".into())),
        "ip/[0-9]{1,4}".prop_map(TerminationId),
        Just(TerminationId("ip/$".into())),
    ]
}

fn property() -> impl Strategy<Value = PropertyParm> {
    let val = prop_oneof![
        value().prop_map(PropertyValue::Single),
        prop::collection::vec(value(), 1..3).prop_map(PropertyValue::Alternatives),
        (value(), value()).prop_map(|(a, b)| PropertyValue::Range(a, b)),
        prop::collection::vec(value(), 1..3).prop_map(PropertyValue::Sublist),
    ];
    let rel = prop_oneof![
        Just(Relation::Equal),
        Just(Relation::Greater),
        Just(Relation::Less),
        Just(Relation::NotEqual)
    ];
    (pkgd(), rel, val).prop_map(|(name, relation, value)| {
        let value = match (relation, value) {
            (Relation::Equal, v) => v,
            (_, PropertyValue::Single(v)) => PropertyValue::Single(v),
            (_, _) => PropertyValue::Single("x".into()),
        };
        PropertyParm {
            name,
            relation,
            value,
        }
    })
}

fn sdp() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z]=[ -|~]{0,20}", 1..5).prop_map(|l| {
        l.iter()
            .map(|s| s.trim().to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn stats() -> impl Strategy<Value = Vec<StatisticsParameter>> {
    prop::collection::vec(
        (pkgd(), prop::collection::vec("[0-9]{1,6}", 0..3))
            .prop_map(|(name, values)| StatisticsParameter { name, values }),
        0..3,
    )
}

fn stream(id: Option<u16>) -> impl Strategy<Value = StreamDescriptor> {
    let mode = prop::option::of(prop_oneof![
        Just(StreamMode::SendOnly),
        Just(StreamMode::RecvOnly),
        Just(StreamMode::SendRecv),
        Just(StreamMode::Inactive),
        Just(StreamMode::Loopback),
    ]);
    let lc = prop::option::of(
        (
            mode,
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>()),
            prop::collection::vec(property(), 0..3),
        )
            .prop_map(|(mode, rv, rg, properties)| LocalControlDescriptor {
                mode,
                reserve_value: rv,
                reserve_group: rg,
                properties,
            }),
    );
    (
        lc,
        prop::option::of(sdp()),
        prop::option::of(sdp()),
        prop::option::of(stats()),
    )
        .prop_map(move |(local_control, local, remote, statistics)| {
            let mut s = StreamDescriptor {
                id,
                local_control,
                local,
                remote,
                statistics,
            };
            if id.is_none() && s.local.is_none() && s.local_control.is_none() {
                s.local = Some("v=0".into());
            }
            s
        })
}

fn media() -> impl Strategy<Value = MediaDescriptor> {
    let ts = prop::option::of(
        (
            prop::option::of(prop_oneof![
                Just(ServiceState::Test),
                Just(ServiceState::OutOfService),
                Just(ServiceState::InService)
            ]),
            prop::option::of(any::<bool>()),
            prop::collection::vec(property(), 0..2),
        )
            .prop_map(|(s, b, p)| TerminationStateDescriptor {
                service_state: s,
                event_buffer_control: b,
                properties: p,
            }),
    );
    (
        ts,
        prop_oneof![
            stream(None).prop_map(|s| vec![s]),
            prop::collection::vec(stream(Some(1)), 0..1),
            (stream(Some(1)), stream(Some(2))).prop_map(|(a, b)| vec![a, b]),
        ],
    )
        .prop_map(|(termination_state, streams)| MediaDescriptor {
            termination_state,
            streams,
        })
}

fn events() -> impl Strategy<Value = EventsDescriptor> {
    let ev = (
        pkgd(),
        prop::option::of(1u16..10),
        any::<bool>(),
        prop::collection::vec(property(), 0..2),
    )
        .prop_map(|(name, stream, keep_active, parameters)| RequestedEvent {
            name,
            stream,
            keep_active,
            parameters,
        });
    prop_oneof![
        Just(EventsDescriptor::default()),
        (any::<u32>(), prop::collection::vec(ev, 1..3)).prop_map(|(id, events)| {
            EventsDescriptor {
                request_id: Some(id),
                events,
            }
        })
    ]
}

fn signals() -> impl Strategy<Value = SignalsDescriptor> {
    let sg = (
        pkgd(),
        prop::option::of(1u16..4),
        prop::option::of(prop_oneof![
            Just(SignalType::OnOff),
            Just(SignalType::TimeOut),
            Just(SignalType::Brief)
        ]),
        prop::option::of(any::<u32>()),
        prop::collection::vec(
            prop_oneof![
                Just(NotifyReason::TimeOut),
                Just(NotifyReason::InterruptByEvent),
                Just(NotifyReason::InterruptByNewSignalsDescr),
                Just(NotifyReason::OtherReason),
                Just(NotifyReason::Iteration)
            ],
            0..3,
        ),
        any::<bool>(),
        prop::collection::vec(property(), 0..2),
    )
        .prop_map(
            |(name, stream, signal_type, duration, nc, ka, parameters)| SignalRequest {
                name,
                stream,
                signal_type,
                duration,
                notify_completion: nc,
                keep_active: ka,
                parameters,
            },
        );
    prop::collection::vec(sg, 0..3).prop_map(|signals| SignalsDescriptor { signals })
}

fn audit() -> impl Strategy<Value = AuditDescriptor> {
    prop::collection::vec(
        prop_oneof![
            Just(AuditItem::Media),
            Just(AuditItem::Events),
            Just(AuditItem::Signals),
            Just(AuditItem::DigitMap),
            Just(AuditItem::Statistics),
            Just(AuditItem::ObservedEvents),
            Just(AuditItem::Packages),
            Just(AuditItem::EventBuffer),
        ],
        0..4,
    )
    .prop_map(|items| AuditDescriptor { items })
}

fn observed() -> impl Strategy<Value = ObservedEventsDescriptor> {
    let ev = (
        prop::option::of("[0-9]{8}T[0-9]{8}"),
        pkgd(),
        prop::option::of(1u16..4),
        prop::collection::vec(property(), 0..2),
    )
        .prop_map(|(timestamp, name, stream, parameters)| ObservedEvent {
            timestamp,
            name,
            stream,
            parameters,
        });
    (any::<u32>(), prop::collection::vec(ev, 1..3))
        .prop_map(|(request_id, events)| ObservedEventsDescriptor { request_id, events })
}

fn error_desc() -> impl Strategy<Value = ErrorDescriptor> {
    (100u16..999, prop::option::of("[A-Za-z0-9 ,.]{0,20}"))
        .prop_map(|(code, text)| ErrorDescriptor { code, text })
}

fn mid() -> impl Strategy<Value = Mid> {
    prop_oneof![
        (any::<[u8; 4]>(), prop::option::of(any::<u16>())).prop_map(|(a, port)| Mid::Ip {
            addr: std::net::IpAddr::from(a),
            port
        }),
        (any::<[u16; 8]>(), prop::option::of(any::<u16>())).prop_map(|(a, port)| Mid::Ip {
            addr: std::net::IpAddr::from(a),
            port
        }),
        ("[a-z][a-z0-9.-]{0,20}", prop::option::of(any::<u16>()))
            .prop_map(|(name, port)| Mid::Domain { name, port }),
        "[a-z][a-z0-9_]{0,10}".prop_map(Mid::Device),
    ]
}

fn sc_parms() -> impl Strategy<Value = ServiceChangeParms> {
    (
        prop::option::of(prop_oneof![
            Just(ServiceChangeMethod::Failover),
            Just(ServiceChangeMethod::Forced),
            Just(ServiceChangeMethod::Graceful),
            Just(ServiceChangeMethod::Restart),
            Just(ServiceChangeMethod::Disconnected),
            Just(ServiceChangeMethod::HandOff),
            "X-[A-Z]{2,5}".prop_map(ServiceChangeMethod::Extension),
        ]),
        prop::option::of("[0-9]{3}( [A-Za-z ]{1,10})?"),
        prop::option::of(any::<u32>()),
        prop::option::of(prop_oneof![
            any::<u16>().prop_map(ServiceChangeAddress::Port),
            mid().prop_map(ServiceChangeAddress::Mid)
        ]),
        prop::option::of("[A-Za-z_]{1,8}/[0-9]"),
        prop::option::of(1u8..4),
        prop::option::of(mid()),
        prop::option::of("[0-9]{8}T[0-9]{8}"),
    )
        .prop_map(
            |(method, reason, delay, address, profile, version, mgc_id, timestamp)| {
                ServiceChangeParms {
                    method,
                    reason,
                    delay,
                    address,
                    profile,
                    version,
                    mgc_id,
                    timestamp,
                }
            },
        )
}

fn amm() -> impl Strategy<Value = AmmRequest> {
    (
        termination(),
        prop::option::of(media()),
        prop::option::of(events()),
        prop::option::of(signals()),
        prop::option::of(
            (prop::option::of(word()), prop::option::of("[0-9x.|]{1,10}"))
                .prop_map(|(name, value)| DigitMapDescriptor { name, value })
                .prop_filter("name or value", |d| d.name.is_some() || d.value.is_some()),
        ),
        prop::option::of(audit()),
        prop::option::of(stats()),
    )
        .prop_map(
            |(termination, media, events, signals, digit_map, audit, statistics)| AmmRequest {
                termination,
                media,
                events,
                signals,
                digit_map,
                audit,
                statistics,
            },
        )
}

fn command() -> impl Strategy<Value = CommandRequest> {
    let c = prop_oneof![
        amm().prop_map(Command::Add),
        amm().prop_map(Command::Modify),
        amm().prop_map(Command::Move),
        (termination(), prop::option::of(audit())).prop_map(|(termination, audit)| {
            Command::Subtract(SubtractRequest { termination, audit })
        }),
        (termination(), audit()).prop_map(|(termination, audit)| Command::AuditValue(
            AuditRequest { termination, audit }
        )),
        (termination(), audit()).prop_map(|(termination, audit)| Command::AuditCapabilities(
            AuditRequest { termination, audit }
        )),
        (termination(), observed(), prop::option::of(error_desc())).prop_map(
            |(termination, observed_events, error)| Command::Notify(NotifyRequest {
                termination,
                observed_events,
                error
            })
        ),
        (termination(), sc_parms()).prop_map(|(termination, parms)| Command::ServiceChange(
            ServiceChangeRequest { termination, parms }
        )),
    ];
    (any::<bool>(), any::<bool>(), c).prop_map(|(optional, wildcard_reply, command)| {
        CommandRequest {
            optional,
            wildcard_reply,
            command,
        }
    })
}

fn context_id() -> impl Strategy<Value = ContextId> {
    prop_oneof![
        Just(ContextId::Null),
        Just(ContextId::Choose),
        Just(ContextId::All),
        any::<u32>().prop_map(ContextId::Id)
    ]
}

fn context_props() -> impl Strategy<Value = ContextProperties> {
    let triple = (
        termination(),
        termination(),
        prop_oneof![
            Just(TopologyDirection::Bothway),
            Just(TopologyDirection::Isolate),
            Just(TopologyDirection::Oneway)
        ],
    )
        .prop_map(|(from, to, direction)| TopologyTriple {
            from,
            to,
            direction,
        });
    (
        prop::collection::vec(triple, 0..2),
        prop::option::of(0u16..16),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(topology, priority, emergency)| ContextProperties {
            topology,
            priority,
            emergency,
        })
}

fn reply_audit() -> impl Strategy<Value = TerminationAudit> {
    (
        prop::option::of(media()),
        prop::option::of(events()),
        prop::option::of(observed()),
        prop::option::of(stats()),
        prop::option::of(prop::collection::vec(
            (word(), any::<u16>()).prop_map(|(name, version)| PackagesItem { name, version }),
            0..3,
        )),
        prop::option::of(error_desc()),
    )
        .prop_map(
            |(media, events, observed_events, statistics, packages, error)| TerminationAudit {
                media,
                events,
                signals: None,
                digit_map: None,
                observed_events,
                statistics,
                packages,
                error,
            },
        )
}

fn command_reply() -> impl Strategy<Value = CommandReply> {
    let amms = (termination(), reply_audit(), 0u8..5).prop_map(|(termination, audit, k)| {
        let r = AmmsReply { termination, audit };
        match k {
            0 => CommandReply::Add(r),
            1 => CommandReply::Modify(r),
            2 => CommandReply::Subtract(r),
            3 => CommandReply::AuditValue(r),
            _ => CommandReply::AuditCapabilities(r),
        }
    });
    prop_oneof![
        amms,
        (termination(), prop::option::of(error_desc())).prop_map(|(termination, error)| {
            CommandReply::Notify(NotifyReply { termination, error })
        }),
        (
            termination(),
            prop_oneof![
                Just(ServiceChangeResult::Accepted),
                error_desc().prop_map(ServiceChangeResult::Error),
                sc_parms().prop_map(ServiceChangeResult::Parms)
            ]
        )
            .prop_map(|(termination, result)| CommandReply::ServiceChange(
                ServiceChangeReply {
                    termination,
                    result
                }
            )),
    ]
}

fn transaction() -> impl Strategy<Value = Transaction> {
    let action = (
        context_id(),
        context_props(),
        prop::collection::vec(command(), 0..3),
    )
        .prop_map(|(context, properties, commands)| ActionRequest {
            context,
            properties,
            commands,
        });
    let action_reply = (
        context_id(),
        context_props(),
        prop::collection::vec(command_reply(), 0..3),
        prop::option::of(error_desc()),
    )
        .prop_map(|(context, properties, replies, error)| ActionReply {
            context,
            properties,
            replies,
            error,
        });
    let segment = prop::option::of(
        (1u16..100, any::<bool>()).prop_map(|(number, complete)| Segment { number, complete }),
    );
    prop_oneof![
        (any::<u32>(), prop::collection::vec(action, 1..3))
            .prop_map(|(id, actions)| Transaction::Request(TransactionRequest { id, actions })),
        (
            any::<u32>(),
            segment,
            any::<bool>(),
            prop_oneof![
                error_desc().prop_map(ReplyResult::Error),
                prop::collection::vec(action_reply, 1..3).prop_map(ReplyResult::Actions)
            ]
        )
            .prop_map(|(id, segment, imm_ack_required, result)| {
                Transaction::Reply(TransactionReply {
                    id,
                    segment,
                    imm_ack_required,
                    result,
                })
            }),
        any::<u32>().prop_map(Transaction::Pending),
        prop::collection::vec(
            (any::<u32>(), 0u32..5).prop_map(|(a, d)| AckRange {
                first: a,
                last: a.saturating_add(d)
            }),
            1..4
        )
        .prop_map(Transaction::ResponseAck),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        1u8..4,
        mid(),
        prop_oneof![
            1 => error_desc().prop_map(MessageBody::Error),
            6 => prop::collection::vec(transaction(), 1..3).prop_map(MessageBody::Transactions),
        ],
    )
        .prop_map(|(version, mid, body)| Message { version, mid, body })
}

/// The message strategy is deep; debug builds need more than the default test stack for it.
#[test]
fn emit_parse_round_trip() {
    let t = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
                cases: 512,
                ..ProptestConfig::default()
            });
            runner
                .run(&(message(), any::<bool>()), |(m, compact)| {
                    let style = if compact {
                        Style::Compact
                    } else {
                        Style::Pretty
                    };
                    let text = emit(&m, style);
                    let back = parse_message(text.as_bytes());
                    prop_assert_eq!(back.as_ref().map_err(|e| format!("{e}\n{text}")), Ok(&m));
                    Ok(())
                })
                .map_err(|e| e.to_string())
        })
        .expect("spawn");
    if let Err(e) = t.join().expect("join") {
        panic!("{e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_message(&data);
        let _ = parse::salvage_request_ids(&data);
    }

    #[test]
    fn mutated_seeds_never_panic(
        seed in 0..SEEDS.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut data = SEEDS[seed].1.as_bytes().to_vec();
        for (at, byte, op) in edits {
            if data.is_empty() { break; }
            let i = at.index(data.len());
            match op {
                0 => data[i] = byte,
                1 => { data.remove(i); }
                _ => data.insert(i, byte),
            }
        }
        if let Ok(m) = parse_message(&data) {
            // Whatever parses must re-emit to something that parses to the same tree.
            let text = emit(&m, Style::Compact);
            prop_assert_eq!(parse_message(text.as_bytes()).ok(), Some(m));
        }
    }
}
