//! The DPDK `Port` backend against the real system DPDK: EAL without hugepages, `net_ring0`
//! (whose queue k loops TX back to RX k, one rte_ring per queue) and `net_null0` (TX frees,
//! RX makes 64-byte frames, hashes with RSS).
//!
//! EAL can be initialised once per process, so everything runs in ONE test function, in order,
//! in this one test binary. Skips (printed) when not root or when EAL cannot start; under
//! `MGW_REQUIRE_PEERS=1` a skip is a failure.
#![cfg(feature = "dpdk")]

use mgw_core::buf::PacketBuffer;
use mgw_core::edge::{Edge, EdgeConfig, Egress, Ingress};
use mgw_core::port::{Batch, Port, BURST};
use mgw_core::testkit;
use mgw_core::time::Instant;
use mgw_core::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Address, Ipv4Packet,
};
use mgw_ports::dpdk::{
    DpdkError, DpdkPort, DpdkPortConfig, DpdkQueue, Eal, Mbuf, Mempool, DEFAULT_DATA_ROOM, HEADROOM,
};

const POOL_SIZE: u32 = 4095;
/// net_ring's rings hold 1023 mbufs (an rte_ring of 1024 slots).
const RING_CAPACITY: usize = 1023;

const MAC_PEER: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
const IP_PEER: Ipv4Address = Ipv4Address([192, 0, 2, 1]);
const IP_EDGE: Ipv4Address = Ipv4Address([192, 0, 2, 2]);

fn eal_args() -> Vec<String> {
    [
        "mgw-dataplane-dpdk-test",
        "--no-huge",
        "--no-shconf",
        "--no-pci",
        "--no-telemetry",
        "-m",
        "256",
        "-l",
        "0",
        "--log-level=*:warning",
        "--vdev=net_null0",
        "--vdev=net_ring0",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A frame of `len` bytes whose content is derived from `tag` (not a valid protocol frame:
/// the ring does not parse).
fn pattern(tag: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| tag.wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn frame(q: &mut DpdkQueue, bytes: &[u8]) -> Mbuf {
    let mut m = q.alloc().expect("pool has mbufs");
    m.append(bytes.len())
        .expect("fits one mbuf")
        .copy_from_slice(bytes);
    m
}

/// Polls `q` until `n` frames arrived (net_ring delivers synchronously; bounded anyway).
fn rx_exact(q: &mut DpdkQueue, n: usize) -> Vec<Mbuf> {
    let mut out = Vec::new();
    let mut batch = Batch::new(BURST);
    for _ in 0..1000 {
        q.rx_burst(&mut batch);
        out.extend(batch.drain());
        if out.len() >= n {
            break;
        }
    }
    assert_eq!(out.len(), n, "frames received");
    out
}

/// PacketBuffer on a real mbuf: the window operations move the data as rte_pktmbuf_* do.
fn mbuf_window_ops(pool: Mempool) {
    let mut m = pool.alloc().expect("mbuf");
    assert_eq!((m.len(), m.headroom()), (0, HEADROOM));
    assert_eq!(m.tailroom(), usize::from(DEFAULT_DATA_ROOM) - HEADROOM);
    m.append(10).unwrap().copy_from_slice(b"0123456789");
    m.prepend(2).unwrap().copy_from_slice(b"hd");
    assert_eq!(m.as_ref(), b"hd0123456789");
    assert_eq!(m.headroom(), HEADROOM - 2);
    assert!(m.adj(2) && m.trim(4));
    assert_eq!(m.as_ref(), b"012345");
    m.as_mut()[0] = b'X';
    assert_eq!(m.as_ref(), b"X12345");
    assert!(m.prepend(HEADROOM + 1).is_none());
    assert!(m.append(m.tailroom() + 1).is_none());
    assert!(m.append(70_000).is_none());
    assert!(!m.adj(7) && !m.trim(7));
    assert_eq!(m.as_ref(), b"X12345");
    m.reset();
    assert_eq!((m.len(), m.headroom()), (0, HEADROOM));
}

/// An empty pool makes `alloc` return `None` (counted by the queue); mbufs dropped on a thread
/// EAL does not know go back to their pool.
fn exhaustion_and_threads(eal: &'static Eal) {
    let tiny = Mempool::new(eal, "mgw_dp_tiny", 7, 0, DEFAULT_DATA_ROOM, None).expect("pool");
    let held: Vec<Mbuf> = (0..7).map(|_| tiny.alloc().expect("mbuf")).collect();
    assert!(tiny.alloc().is_none());
    assert_eq!(tiny.available(), 0);
    let t = std::thread::spawn(move || drop(held));
    t.join().expect("thread");
    assert_eq!(tiny.available(), 7);
    assert!(matches!(
        Mempool::new(eal, "mgw_dp_bad", 7, 0, 100, None),
        Err(DpdkError::InvalidArgument(_))
    ));
    let null = eal.port_by_name("net_null0").expect("net_null0");
    assert!(matches!(
        DpdkPort::new(eal, null, 0, tiny, DpdkPortConfig::default()),
        Err(DpdkError::InvalidArgument(_))
    ));
    // A 1-queue port on the tiny pool: queue alloc fails once the pool is empty, and counts it.
    let mut port = DpdkPort::new(eal, null, 1, tiny, DpdkPortConfig::default()).expect("port");
    let mut q = port.take_queue(0).expect("queue");
    let held: Vec<Mbuf> = (0..7).map(|_| q.alloc().expect("mbuf")).collect();
    assert!(q.alloc().is_none());
    assert_eq!(q.alloc_failures(), 1);
    drop(held);
    assert_eq!(tiny.available(), 7);
}

/// Frames of many lengths go out through tx_burst and come back through rx_burst of the same
/// net_ring queue byte for byte, in order; when the ring is full, tx_burst takes what fits and
/// leaves the rest in the batch.
fn ring_roundtrip(q: &mut DpdkQueue) {
    let lens: Vec<usize> = (0..40).map(|i| 60 + i * 37).collect();
    assert!(lens.iter().all(|l| *l <= q.max_frame()));
    let mut batch = Batch::new(64);
    for (i, len) in lens.iter().enumerate() {
        let m = frame(q, &pattern(i as u8, *len));
        batch.push(m).expect("room");
    }
    assert_eq!(q.tx_burst(&mut batch), 40);
    assert!(batch.is_empty());
    let got = rx_exact(q, 40);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(
            m.as_ref(),
            pattern(i as u8, lens[i]).as_slice(),
            "frame {i}"
        );
        // (net_ring hands over the sender's mbuf as is: it does not set `m.port`, which stays
        // RTE_MBUF_PORT_INVALID from the allocation; hardware PMDs set it.)
    }
    drop(got);
    let s = q.stats();
    assert_eq!((s.tx_packets, s.rx_packets), (40, 40));
    assert_eq!(s.tx_bytes, lens.iter().sum::<usize>() as u64);
    assert_eq!(s.rx_bytes, s.tx_bytes);

    // Fill the ring: exactly RING_CAPACITY frames are taken, the rest stay in the batch.
    let mut taken = 0;
    let mut left = Batch::new(BURST);
    for k in 0..(RING_CAPACITY / BURST + 2) {
        let mut b = Batch::new(BURST);
        for j in 0..BURST {
            b.push(frame(q, &pattern((k * BURST + j) as u8, 64)))
                .expect("room");
        }
        taken += q.tx_burst(&mut b);
        if !b.is_empty() {
            left = b;
            break;
        }
    }
    assert_eq!(taken, RING_CAPACITY, "ring full");
    assert_eq!(left.len(), BURST - RING_CAPACITY % BURST);
    // The frames left are intact and ours; still refused while the ring is full.
    let first_left = RING_CAPACITY;
    assert_eq!(
        left.iter().next().expect("frame").as_ref(),
        pattern(first_left as u8, 64).as_slice()
    );
    assert_eq!(q.tx_burst(&mut left), 0);
    assert_eq!(left.len(), BURST - RING_CAPACITY % BURST);
    assert!(q.stats().tx_full > 0);
    let back = rx_exact(q, RING_CAPACITY);
    for (i, m) in back.iter().enumerate() {
        assert_eq!(
            m.as_ref(),
            pattern(i as u8, 64).as_slice(),
            "ring frame {i}"
        );
    }
    drop(back);
    // Now there is room: the left-over frames go out and come back.
    let n = left.len();
    assert_eq!(q.tx_burst(&mut left), n);
    assert_eq!(rx_exact(q, n).len(), n);
}

fn arp_request(q: &mut DpdkQueue, target: Ipv4Address) -> Mbuf {
    let mut m = q.alloc().expect("mbuf");
    let f = m.append(42).expect("room");
    EthernetRepr {
        src_addr: MAC_PEER,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EtherType::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut *f))
    .unwrap();
    ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: MAC_PEER,
        source_protocol_addr: IP_PEER,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    }
    .emit(&mut f[14..])
    .unwrap();
    m
}

/// Sends `m` through the ring, lets the edge handle what arrives, sends its reply back through
/// the ring and returns the reply as received.
fn through_edge(q: &mut DpdkQueue, edge: &mut Edge, m: Mbuf) -> Mbuf {
    let mut b = Batch::new(BURST);
    b.push(m).expect("room");
    assert_eq!(q.tx_burst(&mut b), 1);
    let rx = rx_exact(q, 1).pop().expect("one frame");
    let Ingress::Reply(reply) = edge.ingress(Instant::ZERO, rx) else {
        panic!("the edge did not answer")
    };
    b.push(reply).expect("room");
    assert_eq!(q.tx_burst(&mut b), 1);
    rx_exact(q, 1).pop().expect("the reply")
}

/// The edge answers an ARP request and an ICMP echo that arrive on a DpdkQueue; the answers
/// (built in place in the received mbuf) leave through the same queue.
fn edge_on_ring(q: &mut DpdkQueue) {
    let mac = q.mac();
    let mut edge = Edge::new(EdgeConfig::single(mac, IP_EDGE, 24));

    let req = arp_request(q, IP_EDGE);
    let r = through_edge(q, &mut edge, req);
    let f = EthernetFrame::new_checked(r.as_ref()).expect("ethernet");
    assert_eq!((f.dst_addr(), f.src_addr()), (MAC_PEER, mac));
    let a = ArpRepr::parse(&ArpPacket::new_checked(f.payload()).expect("arp")).expect("arp");
    assert_eq!(a.operation, ArpOperation::Reply);
    assert_eq!(
        (a.source_hardware_addr, a.source_protocol_addr),
        (mac, IP_EDGE)
    );
    assert_eq!(
        (a.target_hardware_addr, a.target_protocol_addr),
        (MAC_PEER, IP_PEER)
    );
    drop(r);

    // The echo request: ICMP built in a fresh mbuf, IPv4 + Ethernet prepended in place by a
    // peer edge (PacketBuffer::prepend on the mbuf's headroom).
    let mut m = q.alloc().expect("mbuf");
    let data = b"mgwd dpdk echo";
    let icmp = m.append(8 + data.len()).expect("room");
    Icmpv4Repr::EchoRequest {
        ident: 0x1234,
        seq_no: 7,
        data,
    }
    .emit(icmp)
    .unwrap();
    let mut peer = Edge::new(EdgeConfig::single(MAC_PEER, IP_PEER, 24));
    peer.add_neighbor(Instant::ZERO, IP_EDGE, mac);
    assert_eq!(
        peer.encap_ipv4(Instant::ZERO, &mut m, IP_PEER, IP_EDGE, IpProtocol::Icmp),
        Egress::Ready
    );
    assert_eq!(m.headroom(), HEADROOM - 34);
    let r = through_edge(q, &mut edge, m);
    let f = EthernetFrame::new_checked(r.as_ref()).expect("ethernet");
    assert_eq!((f.dst_addr(), f.src_addr()), (MAC_PEER, mac));
    let ip = Ipv4Packet::new_checked(f.payload()).expect("ipv4");
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (IP_EDGE, IP_PEER));
    let p = Icmpv4Packet::new_checked(ip.payload()).expect("icmp");
    assert_eq!(
        Icmpv4Repr::parse(&p).expect("valid icmp"),
        Icmpv4Repr::EchoReply {
            ident: 0x1234,
            seq_no: 7,
            data
        }
    );
    let s = edge.stats();
    assert_eq!((s.arp_replies, s.echo_replies), (1, 1));
}

/// net_null with two queues: RSS is enabled (net_null hashes), both queues receive full
/// bursts and transmit everything; link, stats and xstats are readable.
fn null_two_queues(eal: &'static Eal, pool: Mempool) {
    let id = eal.port_by_name("net_null0").expect("net_null0 probed");
    let mut port = DpdkPort::new(eal, id, 2, pool, DpdkPortConfig::default()).expect("null port");
    let feats = port.features();
    eprintln!("net_null0 features: {feats:?}");
    assert_eq!(feats.driver, "net_null");
    assert_ne!(feats.rss_hf, 0, "net_null advertises RSS: it must be on");
    assert!(port.link().expect("link").up);
    assert!(matches!(
        DpdkPort::new(eal, id, 1, pool, DpdkPortConfig::default()),
        Err(DpdkError::PortBusy(p)) if p == id
    ));
    let mut queues: Vec<DpdkQueue> = (0..2).map(|q| port.take_queue(q).expect("queue")).collect();
    assert!(port.take_queue(0).is_none() && port.take_queue(2).is_none());
    for q in &mut queues {
        let mut b = Batch::new(BURST);
        assert_eq!(q.rx_burst(&mut b), BURST, "net_null fills the burst");
        assert!(b.iter().all(|m| m.len() == 64));
        assert_eq!(q.tx_burst(&mut b), BURST, "net_null takes everything");
        assert!(b.is_empty());
        assert_eq!(q.rx_chained(), 0);
    }
    let s = port.eth_stats().expect("stats");
    assert_eq!(
        (s.ipackets, s.opackets),
        (2 * BURST as u64, 2 * BURST as u64)
    );
    let x = port.xstats().expect("xstats");
    eprintln!("net_null0 xstats: {x:?}");
    let get = |n: &str| x.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
    assert_eq!(get("rx_good_packets"), Some(2 * BURST as u64));
    assert_eq!(get("tx_good_packets"), Some(2 * BURST as u64));
    drop(queues);
    drop(port);
    // Stopped and released: it can be configured again.
    let again = DpdkPort::new(eal, id, 1, pool, DpdkPortConfig::default()).expect("reconfigure");
    assert_eq!(again.features().rss_hf, 0, "one queue: no RSS");
}

#[test]
fn dpdk_port_ring_edge_null() {
    if !testkit::require("dpdk_port", &[], true) {
        return;
    }
    let args = eal_args();
    let eal = match Eal::init(&args) {
        Ok(e) => e,
        Err(e) => {
            let why = format!("dpdk_port: skipped, DPDK unavailable: {e}");
            assert!(!testkit::peers_required(), "{why} (MGW_REQUIRE_PEERS=1)");
            eprintln!("{why}");
            return;
        }
    };
    // Once per process: equal args give the same EAL, other args an error.
    assert!(std::ptr::eq(Eal::init(&args).expect("same args"), eal));
    let mut other = args.clone();
    other.push("--vdev=net_null1".into());
    assert_eq!(Eal::init(&other).unwrap_err(), DpdkError::EalArgsDiffer);
    assert!(eal.port_count() >= 2);

    let pool =
        Mempool::new(eal, "mgw_dp_test", POOL_SIZE, 32, DEFAULT_DATA_ROOM, None).expect("mempool");
    assert_eq!(pool.available(), POOL_SIZE);
    assert!(matches!(
        Mempool::new(eal, "mgw_dp_test", 63, 0, DEFAULT_DATA_ROOM, None),
        Err(DpdkError::Call { errno, .. }) if errno == libc::EEXIST
    ));
    mbuf_window_ops(pool);
    exhaustion_and_threads(eal);

    let ring = eal.port_by_name("net_ring0").expect("net_ring0 probed");
    let mut port = DpdkPort::new(eal, ring, 1, pool, DpdkPortConfig::default()).expect("ring port");
    eprintln!("net_ring0 features: {:?}", port.features());
    assert_eq!(port.features().rss_hf, 0, "one queue: no RSS");
    assert_eq!(port.max_frame(), 1514);
    let mut q = port.take_queue(0).expect("queue 0");
    assert_eq!(q.mac(), port.mac());
    assert_eq!(q.max_frame(), 1514);
    ring_roundtrip(&mut q);
    edge_on_ring(&mut q);
    assert_eq!(q.alloc_failures(), 0);
    drop(q);
    drop(port);

    null_two_queues(eal, pool);
    assert_eq!(pool.available(), POOL_SIZE, "no mbuf leaked");
}
