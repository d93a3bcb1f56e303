//! Tests of the codec, the stream framer, fragmentation and reassembly; they share
//! `floor_request` and the properties that cross all four.

use core::time::Duration;

use mgw_core::time::Instant;
use proptest::prelude::*;

use super::*;

/// A FloorRequest for floor 1 at normal priority, with `uri` as a USER-URI between the two: a
/// variable-length attribute that sizes the message (RFC 8855 §5.3.1 lists no USER-URI in a
/// FloorRequest; the codec does not look at attribute types).
fn floor_request(version: u8, uri: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = MessageWriter::new(
        &mut out,
        &Header::new(version, 0x0102_0304, 77, 9),
        Primitive::FloorRequest,
    );
    w.floor_id(1).user_uri(uri).priority(2);
    let n = w.finish().unwrap();
    assert_eq!(n, out.len());
    out
}

// ---- wire view ----

#[test]
fn header_and_attributes_round_trip() {
    let m = floor_request(1, b"bfcp:alice@example.com");
    assert_eq!(m[0], 0x20, "Ver 1, R=0, F=0");
    let p = Packet::new_checked(&m[..]).unwrap();
    assert_eq!(
        (p.version(), p.responder(), p.fragmented()),
        (1, false, false)
    );
    assert_eq!(p.primitive(), Primitive::FloorRequest);
    assert_eq!(
        (p.conference_id(), p.transaction_id(), p.user_id()),
        (0x0102_0304, 77, 9)
    );
    assert_eq!(p.payload_length() as usize * 4, m.len() - 12);
    let attrs: Vec<_> = attributes(p.payload())
        .map(|a| AttributeRepr::parse(&a.unwrap()))
        .collect();
    assert_eq!(attrs.len(), 3);
    assert_eq!(
        attrs[0],
        AttributeRepr {
            kind: AttributeType::FloorId,
            mandatory: true,
            value: &[0, 1]
        }
    );
    assert_eq!(attrs[1].value, b"bfcp:alice@example.com");
    let r = Repr::parse(&p).unwrap();
    let mut again = vec![0u8; r.buffer_len()];
    r.emit(&mut again).unwrap();
    assert_eq!(again, m);
    assert_eq!(Primitive::from(99), Primitive::Unknown(99));
    assert_eq!(u8::from(Primitive::Unknown(99)), 99);
}

#[test]
fn malformed_messages_are_refused() {
    let m = floor_request(1, b"x");
    assert_eq!(
        Packet::new_checked(&m[..11]).err(),
        Some(BfcpError::Truncated)
    );
    assert_eq!(
        Packet::new_checked(&m[..m.len() - 4]).err(),
        Some(BfcpError::Truncated)
    );
    let mut bad = m.clone();
    bad[0] = 0x60; // Ver 3
    assert_eq!(
        Repr::parse(&Packet::new_checked(&bad[..]).unwrap()),
        Err(BfcpError::Version)
    );
    let mut bad = m.clone();
    bad[13] = 1; // first attribute length 1
    assert_eq!(
        Repr::parse(&Packet::new_checked(&bad[..]).unwrap()),
        Err(BfcpError::Attribute)
    );
    let mut bad = m.clone();
    bad[13] = 200; // runs past the payload
    assert_eq!(
        Repr::parse(&Packet::new_checked(&bad[..]).unwrap()),
        Err(BfcpError::Attribute)
    );
    let mut bad = m.clone();
    bad.extend_from_slice(&[0; 4]);
    assert_eq!(
        Repr::parse(&Packet::new_checked(&bad[..]).unwrap()),
        Err(BfcpError::TrailingBytes)
    );
    let mut bad = m.clone();
    bad[0] |= F_FLAG; // F on version 1
    bad.extend_from_slice(&[0; 4]);
    let p = Packet::new_checked(&bad[..]);
    assert!(p.is_err() || Repr::parse(&p.unwrap()).is_err());
}

// ---- TCP stream framing ----

fn frame_all(framer: &mut StreamFramer, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<BfcpError>) {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for c in chunks {
        let mut f = framer.feed(c);
        loop {
            match f.next_message() {
                Ok(Some(m)) => out.push(f.bytes(m).to_vec()),
                Ok(None) => break,
                Err(e) => {
                    errs.push(e);
                    if framer_failed(&e) {
                        return (out, errs);
                    }
                }
            }
        }
    }
    (out, errs)
}

fn framer_failed(e: &BfcpError) -> bool {
    matches!(
        e,
        BfcpError::Version | BfcpError::Fragment | BfcpError::TooLarge
    )
}

#[test]
fn stream_split_at_every_position() {
    let a = floor_request(1, b"bfcp:alice@example.com");
    let b = floor_request(1, b"");
    let mut stream = a.clone();
    stream.extend_from_slice(&b);
    stream.extend_from_slice(&a);
    for i in 0..=stream.len() {
        for j in i..=stream.len() {
            let mut fr = StreamFramer::new(1024);
            let (msgs, errs) = frame_all(&mut fr, &[&stream[..i], &stream[i..j], &stream[j..]]);
            assert!(errs.is_empty(), "{i} {j}: {errs:?}");
            assert_eq!(msgs, vec![a.clone(), b.clone(), a.clone()], "{i} {j}");
            assert_eq!(fr.stats().messages[1], 3);
        }
    }
}

#[test]
fn stream_bad_attributes_are_dropped_but_sync_is_kept() {
    let a = floor_request(1, b"abc");
    let mut bad = a.clone();
    bad[13] = 0;
    let mut stream = bad.clone();
    stream.extend_from_slice(&a);
    let mut fr = StreamFramer::new(1024);
    let (msgs, errs) = frame_all(&mut fr, &[&stream]);
    assert_eq!(errs, vec![BfcpError::Attribute]);
    assert_eq!(msgs, vec![a.clone()]);
    assert_eq!(fr.stats().malformed, 1);
    // Version 2 on TCP or an oversized message breaks framing: fatal.
    let mut fr = StreamFramer::new(1024);
    let v2 = floor_request(2, b"abc");
    let (_, errs) = frame_all(&mut fr, &[&v2]);
    assert_eq!(errs, vec![BfcpError::Version]);
    assert_eq!(fr.feed(&a).next_message(), Err(BfcpError::Version));
    let mut fr = StreamFramer::new(16);
    let (_, errs) = frame_all(&mut fr, &[&a[..5], &a[5..]]);
    assert_eq!(errs, vec![BfcpError::TooLarge]);
}

// ---- TCP↔UDP interworking ----

#[test]
fn fragment_and_reassemble_out_of_order_with_duplicates() {
    let uri = vec![b'u'; 200];
    let m = floor_request(1, &uri);
    let mut frag = Fragmenter::new(&m, 64).unwrap();
    let mut dgrams = Vec::new();
    let mut buf = [0u8; 64];
    while let Some(r) = frag.next_fragment(&mut buf) {
        let n = r.unwrap();
        assert!(n <= 64);
        dgrams.push(buf[..n].to_vec());
    }
    assert!(dgrams.len() > 3);
    for d in &dgrams {
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!((p.version(), p.fragmented()), (2, true));
        assert_eq!(
            Repr::parse(&p).unwrap().fragment.unwrap().1 as usize * 4,
            m.len() - 12
        );
    }
    let mut re = Reassembler::new(ReassemblyConfig::default());
    let t0 = Instant::from_millis(1000);
    let mut order: Vec<usize> = (0..dgrams.len()).rev().collect();
    order.insert(1, dgrams.len() - 1); // a duplicate
    let mut done = None;
    for (k, &i) in order.iter().enumerate() {
        match re.push(t0, &dgrams[i]).unwrap() {
            Pushed::Pending => assert!(k + 1 < order.len()),
            Pushed::Complete(s) => done = Some(re.completed(s).to_vec()),
            Pushed::Whole => panic!("fragment reported whole"),
        }
    }
    let mut whole = done.expect("complete");
    assert_eq!(whole[0] >> 5, 2);
    to_reliable(&mut whole).unwrap();
    assert_eq!(
        whole, m,
        "reassembled + version 1 = the original TCP message"
    );
    assert_eq!((re.stats().reassembled, re.stats().messages[1]), (1, 1));
    // A small message is not fragmented.
    let small = floor_request(1, b"x");
    let mut f = Fragmenter::new(&small, 1400).unwrap();
    let n = f.next_fragment(&mut buf).unwrap().unwrap();
    assert!(f.next_fragment(&mut buf).is_none());
    assert_eq!(re.push(t0, &buf[..n]), Ok(Pushed::Whole));
}

#[test]
fn reassembly_times_out_and_evicts() {
    let m = floor_request(1, &[b'v'; 120]);
    let mut frag = Fragmenter::new(&m, 40).unwrap();
    let mut buf = [0u8; 40];
    let n = frag.next_fragment(&mut buf).unwrap().unwrap();
    let first = buf[..n].to_vec();
    let cfg = ReassemblyConfig {
        slots: 1,
        max_message: 1024,
        timeout: Duration::from_millis(500),
    };
    let mut re = Reassembler::new(cfg);
    assert_eq!(
        re.push(Instant::from_millis(0), &first),
        Ok(Pushed::Pending)
    );
    assert_eq!(re.poll_timeout(), Instant::from_millis(500));
    re.handle_timeout(Instant::from_millis(499));
    assert_eq!(re.stats().reassembly_dropped, 0);
    re.handle_timeout(Instant::from_millis(500));
    assert_eq!(re.stats().reassembly_dropped, 1);
    assert_eq!(re.poll_timeout(), Instant::FAR_FUTURE);
    // Eviction: a second message while the only slot is busy.
    assert_eq!(
        re.push(Instant::from_millis(600), &first),
        Ok(Pushed::Pending)
    );
    let mut other = first.clone();
    other[9] ^= 1; // another transaction id
    assert_eq!(
        re.push(Instant::from_millis(601), &other),
        Ok(Pushed::Pending)
    );
    assert_eq!(re.stats().reassembly_dropped, 2);
    // Too large for the configuration.
    let mut re = Reassembler::new(ReassemblyConfig {
        slots: 1,
        max_message: 64,
        timeout: Duration::from_secs(1),
    });
    assert_eq!(re.push(Instant::ZERO, &first), Err(BfcpError::TooLarge));
    assert_eq!(re.stats().malformed, 1);
}

// ---- writers ----

/// Parses a whole message written by the writers: its header and top-level attributes.
fn parsed(m: &[u8]) -> (Repr<'_>, Vec<AttributeRepr<'_>>) {
    let r = Repr::parse(&Packet::new_checked(m).unwrap()).unwrap();
    let attrs = attributes(r.payload)
        .map(|a| AttributeRepr::parse(&a.unwrap()))
        .collect();
    (r, attrs)
}

/// The 16-bit identifier and the nested attributes of a grouped attribute.
fn grouped<'a>(a: &AttributeRepr<'a>) -> (u16, Vec<AttributeRepr<'a>>) {
    let v: &'a [u8] = a.value;
    let nested = attributes(&v[2..])
        .map(|n| AttributeRepr::parse(&n.unwrap()))
        .collect();
    (u16::from_be_bytes([v[0], v[1]]), nested)
}

fn attr(kind: AttributeType, mandatory: bool, value: &[u8]) -> AttributeRepr<'_> {
    AttributeRepr {
        kind,
        mandatory,
        value,
    }
}

#[test]
fn primitive_writers_parse_back() {
    let h = Header::new(2, 0x0102_0304, 77, 9);
    let mut out = b"kept".to_vec();
    let n = super::floor_request(
        &mut out,
        &h,
        &FloorRequest {
            floor_ids: &[1, 2],
            beneficiary_id: Some(5),
            participant_provided_info: Some(b"slides, please"),
            priority: Some(3),
        },
    )
    .unwrap();
    assert_eq!(&out[..4], b"kept");
    assert_eq!(n, out.len() - 4);
    let (r, a) = parsed(&out[4..]);
    assert_eq!(
        (r.version, r.responder, r.primitive, r.fragment),
        (2, false, Primitive::FloorRequest, None)
    );
    assert_eq!(
        (r.conference_id, r.transaction_id, r.user_id),
        (0x0102_0304, 77, 9)
    );
    assert_eq!(
        a,
        [
            attr(AttributeType::FloorId, true, &[0, 1]),
            attr(AttributeType::FloorId, true, &[0, 2]),
            attr(AttributeType::BeneficiaryId, true, &[0, 5]),
            attr(
                AttributeType::ParticipantProvidedInfo,
                false,
                b"slides, please"
            ),
            attr(AttributeType::Priority, false, &[0x60, 0]),
        ]
    );
    // "slides, please" is 14 octets: Length 16, no padding; the rest are 4 octets each.
    assert_eq!(n, 12 + 4 * 4 + 16);

    let one = |f: fn(&mut Vec<u8>, &Header) -> Result<usize, BfcpError>, p: Primitive| {
        let mut v = Vec::new();
        assert_eq!(f(&mut v, &h.with_responder(true)), Ok(12));
        let (r, a) = parsed(&v);
        assert_eq!((r.primitive, r.responder, a.len()), (p, true, 0));
    };
    one(hello, Primitive::Hello);
    one(floor_request_status_ack, Primitive::FloorRequestStatusAck);
    one(floor_status_ack, Primitive::FloorStatusAck);
    one(goodbye, Primitive::Goodbye);
    one(goodbye_ack, Primitive::GoodbyeAck);

    let mut v = Vec::new();
    floor_release(&mut v, &h, 0x4001).unwrap();
    floor_request_query(&mut v, &h, 0x4002).unwrap();
    floor_query(&mut v, &h, &[3, 4]).unwrap();
    assert_eq!(v.len(), 16 + 16 + 20);
    let (r, a) = parsed(&v[..16]);
    assert_eq!(r.primitive, Primitive::FloorRelease);
    assert_eq!(a, [attr(AttributeType::FloorRequestId, true, &[0x40, 1])]);
    let (r, a) = parsed(&v[16..32]);
    assert_eq!(r.primitive, Primitive::FloorRequestQuery);
    assert_eq!(a, [attr(AttributeType::FloorRequestId, true, &[0x40, 2])]);
    let (r, a) = parsed(&v[32..]);
    assert_eq!(r.primitive, Primitive::FloorQuery);
    assert_eq!(a.len(), 2);

    let mut v = Vec::new();
    hello_ack(
        &mut v,
        &h.with_responder(true),
        &[
            Primitive::FloorRequest,
            Primitive::Hello,
            Primitive::Goodbye,
        ],
        &[AttributeType::FloorId, AttributeType::UserUri],
    )
    .unwrap();
    let (r, a) = parsed(&v);
    assert_eq!(r.primitive, Primitive::HelloAck);
    assert_eq!(
        a,
        [
            attr(AttributeType::SupportedPrimitives, true, &[1, 11, 16]),
            attr(AttributeType::SupportedAttributes, true, &[2 << 1, 13 << 1]),
        ]
    );

    let mut v = Vec::new();
    error(
        &mut v,
        &h,
        ErrorCode::UnknownMandatoryAttribute,
        &[40 << 1],
        Some(b"what is 40?"),
    )
    .unwrap();
    let (r, a) = parsed(&v);
    assert_eq!(r.primitive, Primitive::Error);
    assert_eq!(
        a,
        [
            attr(AttributeType::ErrorCode, true, &[4, 80]),
            attr(AttributeType::ErrorInfo, false, b"what is 40?"),
        ]
    );
}

#[test]
fn status_writers_group_their_attributes() {
    let h = Header::new(1, 9, 0, 7);
    let info = FloorRequestInformation {
        floor_request_id: 0x0102,
        status: RequestStatus::Granted,
        queue_position: 0,
        status_info: Some(b"go ahead"),
        floor_ids: &[3, 4],
    };
    let mut v = Vec::new();
    floor_request_status(&mut v, &h, &info).unwrap();
    let (r, a) = parsed(&v);
    assert_eq!(r.primitive, Primitive::FloorRequestStatus);
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].kind, a[0].mandatory),
        (AttributeType::FloorRequestInformation, true)
    );
    let (frid, inner) = grouped(&a[0]);
    assert_eq!(frid, 0x0102);
    let kinds: Vec<_> = inner.iter().map(|x| x.kind).collect();
    assert_eq!(
        kinds,
        [
            AttributeType::OverallRequestStatus,
            AttributeType::FloorRequestStatus,
            AttributeType::FloorRequestStatus
        ]
    );
    let (id, overall) = grouped(&inner[0]);
    assert_eq!(id, 0x0102);
    assert_eq!(
        overall,
        [
            attr(AttributeType::RequestStatus, true, &[3, 0]),
            attr(AttributeType::StatusInfo, false, b"go ahead"),
        ]
    );
    assert_eq!(grouped(&inner[1]), (3, vec![]));
    assert_eq!(grouped(&inner[2]), (4, vec![]));
    // Lengths: each FLOOR-REQUEST-STATUS 4, OVERALL 4 + 4 + 12, the group 4 + 20 + 8.
    assert_eq!(a[0].value.len() + 2, 32);
    assert_eq!(v.len(), 12 + 32);

    let mut v = Vec::new();
    floor_status(
        &mut v,
        &h,
        Some(3),
        &[
            info,
            FloorRequestInformation {
                status_info: None,
                ..info
            },
        ],
    )
    .unwrap();
    let (r, a) = parsed(&v);
    assert_eq!(r.primitive, Primitive::FloorStatus);
    let kinds: Vec<_> = a.iter().map(|x| x.kind).collect();
    assert_eq!(
        kinds,
        [
            AttributeType::FloorId,
            AttributeType::FloorRequestInformation,
            AttributeType::FloorRequestInformation
        ]
    );
    assert_eq!(grouped(&a[2]).1.len(), 3);
}

#[test]
fn writers_refuse_what_would_not_parse() {
    let mut out = b"kept".to_vec();
    let h = Header::new(3, 1, 2, 3);
    assert_eq!(hello(&mut out, &h), Err(BfcpError::Version));
    assert_eq!(
        hello(&mut out, &Header { version: 0, ..h }),
        Err(BfcpError::Version)
    );
    let h = Header::new(1, 1, 2, 3);
    assert_eq!(
        super::floor_request(&mut out, &h, &FloorRequest::new(&[])),
        Err(BfcpError::MissingAttribute)
    );
    let no_floor = FloorRequestInformation {
        floor_request_id: 1,
        status: RequestStatus::Pending,
        queue_position: 1,
        status_info: None,
        floor_ids: &[],
    };
    assert_eq!(
        floor_request_status(&mut out, &h, &no_floor),
        Err(BfcpError::MissingAttribute)
    );
    let big = [b'x'; 254];
    let too_big = FloorRequest {
        participant_provided_info: Some(&big),
        ..FloorRequest::new(&[1])
    };
    assert_eq!(
        super::floor_request(&mut out, &h, &too_big),
        Err(BfcpError::TooLarge)
    );
    let high = FloorRequest {
        priority: Some(8),
        ..FloorRequest::new(&[1])
    };
    assert_eq!(
        super::floor_request(&mut out, &h, &high),
        Err(BfcpError::TooLarge)
    );
    let mut w = MessageWriter::new(&mut out, &h, Primitive::FloorRequest);
    w.attribute(AttributeType::Unknown(128), false, &[]);
    assert_eq!(w.finish(), Err(BfcpError::TooLarge));
    // A group is at most 255 octets: 4 + OVERALL-REQUEST-STATUS (8) + 4 per floor leaves room
    // for 60 floors (252 octets), not 61.
    let ids: Vec<u16> = (0..61).collect();
    let info = FloorRequestInformation {
        floor_ids: &ids,
        ..no_floor
    };
    let mut v = Vec::new();
    assert_eq!(
        floor_request_status(&mut v, &h, &info),
        Err(BfcpError::TooLarge)
    );
    assert!(v.is_empty());
    let ids: Vec<u16> = (0..60).collect();
    let info = FloorRequestInformation {
        floor_ids: &ids,
        ..no_floor
    };
    let mut v = Vec::new();
    assert_eq!(floor_request_status(&mut v, &h, &info), Ok(12 + 252));
    let (_, a) = parsed(&v);
    assert_eq!(grouped(&a[0]).1.len(), 61);
    // A payload over 65535 units.
    let mut w = MessageWriter::new(&mut out, &h, Primitive::FloorQuery);
    for f in 0..65536u32 {
        w.floor_id(f as u16);
    }
    assert_eq!(w.finish(), Err(BfcpError::TooLarge));
    assert_eq!(out, b"kept");
}

#[test]
fn header_of_a_received_message_answers_it() {
    let m = floor_request(1, b"x");
    let h = Header::of(&Packet::new_checked(&m[..]).unwrap());
    assert_eq!(h, Header::new(1, 0x0102_0304, 77, 9));
    let mut v = Vec::new();
    floor_request_status_ack(&mut v, &h.with_responder(true)).unwrap();
    assert_eq!(&v[..], [0x30, 14, 0, 0, 1, 2, 3, 4, 0, 77, 0, 9]);
}

proptest! {
    #[test]
    fn prop_random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300), cut in any::<prop::sample::Index>()) {
        if let Ok(p) = Packet::new_checked(&data[..]) {
            if let Ok(r) = Repr::parse(&p) {
                // emit(parse(x)) == x but for the reserved bits (sent as zero); the fuzz
                // target asserts the same.
                let mut out = vec![0u8; r.buffer_len()];
                prop_assert_eq!(r.emit(&mut out), Ok(data.len()));
                prop_assert_eq!(out[0], data[0] & 0xf8);
                prop_assert_eq!(&out[1..], &data[1..]);
            }
            let _ = (p.primitive(), p.fragment_offset(), p.payload().len());
        }
        for a in attributes(&data).flatten() {
            let _ = (a.kind(), a.value().len());
        }
        let mut fr = StreamFramer::new(256);
        let i = cut.index(data.len() + 1);
        let _ = frame_all(&mut fr, &[&data[..i], &data[i..]]);
        let mut re = Reassembler::new(ReassemblyConfig { slots: 2, max_message: 256, timeout: Duration::from_secs(1) });
        let _ = re.push(Instant::ZERO, &data);
        let _ = Fragmenter::new(&data, 40).map(|mut f| { let mut b = [0u8; 40]; while let Some(Ok(_)) = f.next_fragment(&mut b) {} });
    }

    #[test]
    fn prop_emit_parse_and_fragment_round_trip(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 0..8),
        prim in 1u8..=17, conf in any::<u32>(), tid in any::<u16>(), uid in any::<u16>(), r in any::<bool>(),
        mtu in 20usize..200, seed in any::<u64>(),
    ) {
        let attrs: Vec<_> = values.iter().enumerate().map(|(i, v)| AttributeRepr {
            kind: AttributeType::from((i % 18 + 1) as u8), mandatory: i % 2 == 0, value: v }).collect();
        let mut payload = vec![0u8; 4096];
        let n = emit_attributes(&attrs, &mut payload).unwrap();
        let repr = Repr { version: 1, responder: r, primitive: Primitive::from(prim), conference_id: conf,
            transaction_id: tid, user_id: uid, fragment: None, payload: &payload[..n] };
        let mut m = vec![0u8; repr.buffer_len()];
        repr.emit(&mut m).unwrap();
        let parsed = Repr::parse(&Packet::new_checked(&m[..]).unwrap()).unwrap();
        prop_assert_eq!(parsed, repr);
        let got: Vec<_> = attributes(parsed.payload).map(|a| AttributeRepr::parse(&a.unwrap())).collect();
        prop_assert_eq!(got, attrs);
        // Fragment, shuffle deterministically, reassemble.
        let mut frag = Fragmenter::new(&m, mtu).unwrap();
        let mut dgrams = Vec::new();
        let mut buf = vec![0u8; mtu];
        while let Some(x) = frag.next_fragment(&mut buf) { let k = x.unwrap(); prop_assert!(k <= mtu); dgrams.push(buf[..k].to_vec()); }
        let len = dgrams.len();
        for i in (1..len).rev() { let j = (seed.wrapping_mul(i as u64 + 7) % (i as u64 + 1)) as usize; dgrams.swap(i, j); }
        let mut re = Reassembler::new(ReassemblyConfig::default());
        let mut whole = None;
        for d in &dgrams {
            match re.push(Instant::ZERO, d).unwrap() {
                Pushed::Whole => whole = Some(d.clone()),
                Pushed::Complete(s) => whole = Some(re.completed(s).to_vec()),
                Pushed::Pending => {}
            }
        }
        let mut whole = whole.unwrap();
        to_reliable(&mut whole).unwrap();
        prop_assert_eq!(whole, m);
    }
    #[test]
    fn prop_message_writer_matches_repr_emit(
        values in proptest::collection::vec((1u8..=127, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..=253)), 0..8),
        prim in any::<u8>(), conf in any::<u32>(), tid in any::<u16>(), uid in any::<u16>(),
        r in any::<bool>(), version in 1u8..=2, prefix in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let attrs: Vec<_> = values.iter().map(|(k, m, v)| AttributeRepr {
            kind: AttributeType::from(*k), mandatory: *m, value: v }).collect();
        let mut payload = vec![0u8; 4096];
        let n = emit_attributes(&attrs, &mut payload).unwrap();
        let repr = Repr { version, responder: r, primitive: Primitive::from(prim), conference_id: conf,
            transaction_id: tid, user_id: uid, fragment: None, payload: &payload[..n] };
        let mut want = vec![0u8; repr.buffer_len()];
        repr.emit(&mut want).unwrap();
        let mut out = prefix.clone();
        let h = Header::new(version, conf, tid, uid).with_responder(r);
        let mut w = MessageWriter::new(&mut out, &h, Primitive::from(prim));
        for a in &attrs {
            w.attribute(a.kind, a.mandatory, a.value);
        }
        prop_assert_eq!(w.finish(), Ok(want.len()));
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&out[prefix.len()..], &want[..]);
        let (parsed, got) = parsed(&out[prefix.len()..]);
        prop_assert_eq!(parsed, repr);
        prop_assert_eq!(got, attrs);
    }
}
