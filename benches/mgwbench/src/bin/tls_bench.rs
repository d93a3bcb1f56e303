//! TLS/DTLS benchmark for mgw-tls, printing one JSON object.
//!
//! All figures are single-core, in memory (no sockets), with the same-run aws-lc-rs AES-128-GCM
//! seal/open ceiling beside them so each reads as a ratio. Handshake figures time the server
//! side only (the client's work runs untimed in between). Memory per idle leg is measured with
//! a counting global allocator: live bytes after establishing N sessions, divided by N.
//! Bounded to well under a minute.
//!
//! Timing uses this thread's on-CPU time (`/proc/thread-self/schedstat`, first field, ns) when
//! available, so that a loaded 2-core machine does not distort the figures; otherwise wall time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use mgw_core::time::Instant;
use mgw_tls::aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use mgw_tls::dtls::DtlsOutput;
use mgw_tls::{
    CipherSuite, DtlsConfig, DtlsSession, HashFunction, Identity, PeerAuth, PeerFingerprints,
    SecurityRole, ServerName, TlsContext, TlsProfile, TlsSession, TlsSettings, TlsVersion,
};
use serde_json::json;

/// A stopwatch on this thread's CPU time (falls back to wall time).
#[derive(Clone, Copy)]
struct StdInstant(u64);

/// Reads the first field of schedstat without allocating (the path fits std's stack buffer).
/// The kernel updates it at scheduler ticks, so timed sections are kept to 100 ms or more.
fn cpu_ns() -> Option<u64> {
    use std::io::Read;
    let mut f = std::fs::File::open("/proc/thread-self/schedstat").ok()?;
    let mut buf = [0u8; 96];
    let n = f.read(&mut buf).ok()?;
    let mut v: u64 = 0;
    let mut any = false;
    for &b in &buf[..n] {
        if b.is_ascii_digit() {
            v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            any = true;
        } else {
            break;
        }
    }
    any.then_some(v)
}

fn wall_ns() -> u64 {
    use std::sync::OnceLock;
    static T0: OnceLock<std::time::Instant> = OnceLock::new();
    T0.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

impl StdInstant {
    fn now() -> Self {
        StdInstant(cpu_ns().unwrap_or_else(wall_ns))
    }
    fn elapsed(self) -> Duration {
        Duration::from_nanos(Self::now().0.saturating_sub(self.0))
    }
}

struct Counting;
static LIVE: AtomicI64 = AtomicI64::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as i64 - l.size() as i64, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const NOW: Instant = Instant::from_millis(1000);

struct Ids {
    client: Identity,
    server: Identity,
}

fn auth(id: &Identity) -> PeerAuth {
    PeerAuth::fingerprints(PeerFingerprints::one(id.fingerprint(HashFunction::Sha256)))
}

fn profile13() -> TlsProfile {
    TlsProfile {
        versions: vec![TlsVersion::Tls13],
        suites: vec![CipherSuite::TLS13_AES_128_GCM_SHA256],
        ..TlsProfile::default()
    }
}

/// Runs one session over `rx`, appending what it sends to `out`. Returns seconds spent.
fn step(s: &mut TlsSession, rx: &mut Vec<u8>, out: &mut Vec<u8>, tx: &mut [u8]) -> f64 {
    let t = StdInstant::now();
    if let Ok(p) = s.on_ciphertext(rx, NOW, tx, &mut |_| {}) {
        out.extend_from_slice(&tx[..p.written]);
        rx.drain(..p.consumed);
    }
    loop {
        let n = s.poll_transmit(tx);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&tx[..n]);
    }
    while s.poll_event().is_some() {}
    t.elapsed().as_secs_f64()
}

/// Handshakes a pair in memory; returns (client, server, server-side seconds).
fn handshake(
    cctx: &TlsContext,
    sctx: &TlsContext,
    ids: &Ids,
    tx: &mut [u8],
) -> (TlsSession, TlsSession, f64) {
    let name = ServerName::try_from("server.mgw").unwrap();
    let mut c = TlsSession::client(cctx, &auth(&ids.server), name, NOW).unwrap();
    let t = StdInstant::now();
    let mut s = TlsSession::server(sctx, &auth(&ids.client), NOW).unwrap();
    let mut server_time = t.elapsed().as_secs_f64();
    let (mut c_rx, mut s_rx) = (Vec::new(), Vec::new());
    for _ in 0..16 {
        let mut c_out = Vec::new();
        step(&mut c, &mut c_rx, &mut c_out, tx);
        s_rx.extend_from_slice(&c_out);
        let mut s_out = Vec::new();
        server_time += step(&mut s, &mut s_rx, &mut s_out, tx);
        c_rx.extend_from_slice(&s_out);
        if c_out.is_empty() && s_out.is_empty() {
            break;
        }
    }
    assert!(c.is_established() && s.is_established());
    (c, s, server_time)
}

/// Seals `count` records of `size` bytes from `from` into one buffer.
fn seal_many(from: &mut TlsSession, size: usize, count: usize) -> Vec<u8> {
    let payload = vec![0x5au8; size];
    let mut wire = vec![0u8; count * (size + 64)];
    let mut w = 0;
    for _ in 0..count {
        w += from.seal(&payload, &mut wire[w..]).unwrap();
    }
    wire.truncate(w);
    wire
}

/// Opens every record in `wire` with `to`; if `relay` is given, seals each plaintext with it
/// (TLS↔TLS relay). Returns (seconds, plaintext bytes).
fn open_all(
    to: &mut TlsSession,
    wire: &mut [u8],
    mut relay: Option<(&mut TlsSession, &mut [u8])>,
) -> (f64, usize) {
    let t = StdInstant::now();
    let mut off = 0;
    let mut bytes = 0;
    let mut relay_off = 0;
    while off < wire.len() {
        match to.open_record(&mut wire[off..]).unwrap() {
            mgw_tls::Record::Data {
                consumed,
                plaintext,
            } => {
                let pt = off + plaintext.start..off + plaintext.end;
                bytes += pt.len();
                if let Some((leg, out)) = relay.as_mut() {
                    if relay_off + pt.len() + 64 > out.len() {
                        relay_off = 0;
                    }
                    relay_off += leg.seal(&wire[pt], &mut out[relay_off..]).unwrap();
                }
                off += consumed;
            }
            mgw_tls::Record::Control { consumed } => off += consumed,
            mgw_tls::Record::Incomplete { .. } => break,
        }
    }
    (t.elapsed().as_secs_f64(), bytes)
}

fn aes_ceiling(size: usize, iters: usize) -> (f64, f64) {
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7u8; 16]).unwrap());
    let mut buf = vec![0u8; size + 16];
    let mut sealed = Vec::with_capacity(iters);
    let t = StdInstant::now();
    for i in 0..iters {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(n),
                Aad::from([0u8; 5]),
                &mut buf[..size],
            )
            .unwrap();
        if i < 64 {
            let mut c = buf[..size].to_vec();
            c.extend_from_slice(tag.as_ref());
            sealed.push(c);
        }
    }
    let seal_s = t.elapsed().as_secs_f64();
    // Open: authentic records (reusing 64 distinct ones, each opened from a fresh copy).
    let mut work = vec![0u8; size + 16];
    let t = StdInstant::now();
    for i in 0..iters {
        let c = &sealed[i % sealed.len()];
        work.copy_from_slice(c);
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&((i % sealed.len()) as u64).to_be_bytes());
        key.open_in_place(
            Nonce::assume_unique_for_key(n),
            Aad::from([0u8; 5]),
            &mut work,
        )
        .unwrap();
    }
    let open_s = t.elapsed().as_secs_f64();
    (seal_s, open_s)
}

/// The same AES-128-GCM opens over a large buffer of distinct records (the memory access
/// pattern of `open_all`): `count` records of `size` bytes, sealed untimed, opened timed.
fn aes_open_streaming(size: usize, count: usize, rounds: usize) -> f64 {
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7u8; 16]).unwrap());
    let rec = size + 16;
    let mut t_open = 0.0;
    for r in 0..rounds {
        let mut buf = vec![0x5au8; count * rec];
        for (i, chunk) in buf.chunks_exact_mut(rec).enumerate() {
            let mut n = [0u8; 12];
            n[4..].copy_from_slice(&((r * count + i) as u64).to_be_bytes());
            let (body, tag_out) = chunk.split_at_mut(size);
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(n),
                    Aad::from([0u8; 5]),
                    body,
                )
                .unwrap();
            tag_out.copy_from_slice(tag.as_ref());
        }
        let t = StdInstant::now();
        for (i, chunk) in buf.chunks_exact_mut(rec).enumerate() {
            let mut n = [0u8; 12];
            n[4..].copy_from_slice(&((r * count + i) as u64).to_be_bytes());
            key.open_in_place(Nonce::assume_unique_for_key(n), Aad::from([0u8; 5]), chunk)
                .unwrap();
        }
        t_open += t.elapsed().as_secs_f64();
    }
    t_open
}

fn gbps(bytes: usize, s: f64) -> f64 {
    (bytes as f64 * 8.0 / s / 1e9 * 100.0).round() / 100.0
}

fn rate(n: usize, s: f64) -> f64 {
    (n as f64 / s).round()
}

fn main() {
    let started = std::time::Instant::now();
    let timing = if cpu_ns().is_some() {
        "thread_cpu_time"
    } else {
        "wall_time"
    };
    let ids = Ids {
        client: Identity::generate_self_signed("client.mgw").unwrap(),
        server: Identity::generate_self_signed("server.mgw").unwrap(),
    };
    let settings = TlsSettings {
        profile: profile13(),
        ..TlsSettings::default()
    };
    let cctx = TlsContext::new(settings.clone(), ids.client.clone()).unwrap();
    let sctx = TlsContext::new(settings.clone(), ids.server.clone()).unwrap();
    let mut tx = vec![0u8; 1 << 17];
    // Profiling aid: `TLS_BENCH_HANDSHAKES_ONLY=N` runs N full handshakes and prints their rate.
    if let Some(n) = std::env::var("TLS_BENCH_HANDSHAKES_ONLY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let sctx = TlsContext::new(
            TlsSettings {
                tls13_tickets: 0,
                ..settings.clone()
            },
            ids.server.clone(),
        )
        .unwrap();
        let t: f64 = (0..n)
            .map(|_| handshake(&cctx, &sctx, &ids, &mut tx).2)
            .sum();
        println!(
            "{}",
            json!({"bench": "tls_handshakes", "full_server_side_per_s": rate(n, t)})
        );
        return;
    }

    // --- Bulk 16 KiB: decrypt only, and decrypt + re-encrypt into a second leg.
    let (mut c1, mut s1, _) = handshake(&cctx, &sctx, &ids, &mut tx);
    let (_c2, mut s2, _) = handshake(&cctx, &sctx, &ids, &mut tx);
    const BULK: usize = 16 * 1024;
    const BULK_N: usize = 4096;
    const ROUNDS: usize = 6;
    let mut relay_out = vec![0u8; 8 << 20];
    let (mut t_dec, mut b_dec, mut allocs_open) = (0.0, 0, 0);
    let (mut t_relay, mut b_relay, mut allocs_relay) = (0.0, 0, 0);
    for _ in 0..ROUNDS {
        let mut wire = seal_many(&mut c1, BULK, BULK_N);
        let allocs_before = ALLOCS.load(Ordering::Relaxed);
        let (t, b) = open_all(&mut s1, &mut wire, None);
        allocs_open += ALLOCS.load(Ordering::Relaxed) - allocs_before;
        t_dec += t;
        b_dec += b;
        let mut wire = seal_many(&mut c1, BULK, BULK_N);
        let allocs_before = ALLOCS.load(Ordering::Relaxed);
        let (t, b) = open_all(&mut s1, &mut wire, Some((&mut s2, &mut relay_out)));
        allocs_relay += ALLOCS.load(Ordering::Relaxed) - allocs_before;
        t_relay += t;
        b_relay += b;
    }

    // --- 300-byte records.
    const SMALL: usize = 300;
    const SMALL_N: usize = 300_000;
    let (mut t_sdec, mut t_srelay) = (0.0, 0.0);
    for _ in 0..ROUNDS {
        let mut wire = seal_many(&mut c1, SMALL, SMALL_N);
        t_sdec += open_all(&mut s1, &mut wire, None).0;
        let mut wire = seal_many(&mut c1, SMALL, SMALL_N);
        t_srelay += open_all(&mut s1, &mut wire, Some((&mut s2, &mut relay_out))).0;
    }

    // --- Batching: open one record from each of N sessions per pass (round robin), against
    // draining one session at a time.
    const SESS: usize = 64;
    const PER: usize = 10_000;
    let mut pairs: Vec<(TlsSession, TlsSession)> = (0..SESS)
        .map(|_| handshake(&cctx, &sctx, &ids, &mut tx))
        .map(|(c, s, _)| (c, s))
        .collect();
    let rec = SMALL + 22;
    let mut wires: Vec<Vec<u8>> = pairs
        .iter_mut()
        .map(|(c, _)| seal_many(c, SMALL, PER))
        .collect();
    let t = StdInstant::now();
    for ((_, s), w) in pairs.iter_mut().zip(wires.iter_mut()) {
        open_all(s, w, None);
    }
    let t_seq = t.elapsed().as_secs_f64();
    let mut wires: Vec<Vec<u8>> = pairs
        .iter_mut()
        .map(|(c, _)| seal_many(c, SMALL, PER))
        .collect();
    let t = StdInstant::now();
    for i in 0..PER {
        for ((_, s), w) in pairs.iter_mut().zip(wires.iter_mut()) {
            let _ = s.open_record(&mut w[i * rec..(i + 1) * rec]);
        }
    }
    let t_rr = t.elapsed().as_secs_f64();
    drop(pairs);

    // --- Handshakes (server side) and resumptions.
    let no_tickets = TlsSettings {
        tls13_tickets: 0,
        ..settings.clone()
    };
    let sctx_full = TlsContext::new(no_tickets, ids.server.clone()).unwrap();
    const HS: usize = 400;
    let mut hs_time = 0.0;
    for _ in 0..HS {
        hs_time += handshake(&cctx, &sctx_full, &ids, &mut tx).2;
    }
    // Resumption: a first handshake leaves a ticket; each resumed session yields a new one
    // (the ticket arrives after the handshake, so pump one record to deliver it).
    let mut res_time = 0.0;
    let mut resumed = 0;
    for i in 0..=HS {
        let (mut c, mut s, t) = handshake(&cctx, &sctx, &ids, &mut tx);
        if i > 0 {
            res_time += t;
            resumed += 1;
        }
        let n = s.seal(b"t", &mut tx).unwrap();
        let mut rx = tx[..n].to_vec();
        let mut out = vec![0u8; 1024];
        let _ = c.on_ciphertext(&mut rx, NOW, &mut out, &mut |_| {});
    }

    // --- Leg setup cost: a server session for a peer seen before (cached config) and for a
    // new peer fingerprint each time (verifier + rustls ServerConfig built).
    const SETUP: usize = 20_000;
    let t = StdInstant::now();
    for _ in 0..SETUP {
        std::hint::black_box(TlsSession::server(&sctx, &auth(&ids.client), NOW).unwrap());
    }
    let t_warm = t.elapsed().as_secs_f64();
    let fresh: Vec<PeerAuth> = (0..SETUP)
        .map(|i| {
            PeerAuth::fingerprints(PeerFingerprints::one(mgw_tls::Fingerprint::of_der(
                HashFunction::Sha256,
                &i.to_be_bytes(),
            )))
        })
        .collect();
    let t = StdInstant::now();
    for a in &fresh {
        std::hint::black_box(TlsSession::server(&sctx, a, NOW).unwrap());
    }
    let t_cold = t.elapsed().as_secs_f64();

    // --- DTLS 1.2, 200-byte datagrams.
    let dcfg_c = DtlsConfig::new(&ids.client, 1200, Duration::from_secs(10)).unwrap();
    let dcfg_s = DtlsConfig::new(&ids.server, 1200, Duration::from_secs(10)).unwrap();
    let mut dc = DtlsSession::new(
        &dcfg_c,
        SecurityRole::Client,
        PeerFingerprints::one(ids.server.fingerprint(HashFunction::Sha256)),
        "b",
        NOW,
    )
    .unwrap();
    let mut ds = DtlsSession::new(
        &dcfg_s,
        SecurityRole::Server,
        PeerFingerprints::one(ids.client.fingerprint(HashFunction::Sha256)),
        "b",
        NOW,
    )
    .unwrap();
    let mut buf = vec![0u8; 2048];
    let drain = |s: &mut DtlsSession, buf: &mut Vec<u8>| -> (Vec<Vec<u8>>, usize) {
        let mut out = Vec::new();
        let mut data = 0;
        loop {
            match s.poll(buf) {
                DtlsOutput::Transmit(d) => out.push(d.to_vec()),
                DtlsOutput::Data(d) => data += d.len(),
                DtlsOutput::BufferTooSmall { needed } => buf.resize(needed, 0),
                DtlsOutput::Event(_) => {}
                DtlsOutput::Wait(_) => return (out, data),
            }
        }
    };
    for _ in 0..10 {
        let (a, _) = drain(&mut dc, &mut buf);
        for d in &a {
            let _ = ds.handle_datagram(d, NOW);
        }
        let (b, _) = drain(&mut ds, &mut buf);
        for d in &b {
            let _ = dc.handle_datagram(d, NOW);
        }
    }
    assert!(dc.is_established() && ds.is_established());
    const DN: usize = 400_000;
    let payload = [0x33u8; 200];
    let mut dgrams = Vec::with_capacity(DN);
    let dtls_allocs_before = ALLOCS.load(Ordering::Relaxed);
    let t = StdInstant::now();
    for _ in 0..DN {
        dc.send(&payload).unwrap();
        if let DtlsOutput::Transmit(d) = dc.poll(&mut buf) {
            dgrams.push(d.to_vec());
        }
    }
    let _ = drain(&mut dc, &mut buf);
    let t_dseal = t.elapsed().as_secs_f64();
    // Minus the test's own copy of each datagram.
    let dtls_seal_allocs =
        (ALLOCS.load(Ordering::Relaxed) - dtls_allocs_before) as f64 / DN as f64 - 1.0;
    let dtls_allocs_before = ALLOCS.load(Ordering::Relaxed);
    let t = StdInstant::now();
    let mut got = 0;
    for d in &dgrams {
        ds.handle_datagram(d, NOW).unwrap();
        if let DtlsOutput::Data(x) = ds.poll(&mut buf) {
            got += x.len();
        }
    }
    let t_dopen = t.elapsed().as_secs_f64();
    let dtls_open_allocs = (ALLOCS.load(Ordering::Relaxed) - dtls_allocs_before) as f64 / DN as f64;
    assert_eq!(got, DN * 200);

    // --- Memory per idle established leg.
    const MEM_N: usize = 500;
    let mut clients = Vec::with_capacity(MEM_N);
    let mut servers = Vec::with_capacity(MEM_N);
    let base = LIVE.load(Ordering::Relaxed);
    for _ in 0..MEM_N {
        let (c, s, _) = handshake(&cctx, &sctx_full, &ids, &mut tx);
        clients.push(c);
        servers.push(s);
    }
    let both = LIVE.load(Ordering::Relaxed) - base;
    drop(clients);
    let servers_only = LIVE.load(Ordering::Relaxed) - base;
    drop(servers);
    let size_of = std::mem::size_of::<TlsSession>();

    // --- Ceilings in the same run.
    let (bs, bo) = aes_ceiling(BULK, 6 * 4096);
    let (ss, so) = aes_ceiling(SMALL, 1_800_000);
    let bulk_stream = aes_open_streaming(BULK, BULK_N, ROUNDS);
    let small_stream = aes_open_streaming(SMALL, SMALL_N, ROUNDS);

    let out = json!({
        "bench": "tls",
        "timing": timing,
        "suite": "TLS13_AES_128_GCM_SHA256",
        "bulk_16k": {
            "decrypt_gbps": gbps(b_dec, t_dec),
            "decrypt_reencrypt_gbps": gbps(b_relay, t_relay),
            "allocations_during_decrypt": allocs_open,
            "allocations_during_decrypt_reencrypt": allocs_relay,
            "ceiling_aes128gcm_open_gbps": gbps(BULK * 6 * 4096, bo),
            "ceiling_aes128gcm_seal_gbps": gbps(BULK * 6 * 4096, bs),
            "ceiling_aes128gcm_open_streaming_gbps": gbps(BULK * BULK_N * ROUNDS, bulk_stream),
        },
        "records_300b": {
            "decrypt_per_s": rate(ROUNDS * SMALL_N, t_sdec),
            "decrypt_reencrypt_per_s": rate(ROUNDS * SMALL_N, t_srelay),
            "ceiling_aes128gcm_open_per_s": rate(1_800_000, so),
            "ceiling_aes128gcm_seal_per_s": rate(1_800_000, ss),
            "ceiling_aes128gcm_open_streaming_per_s": rate(SMALL_N * ROUNDS, small_stream),
        },
        "batching_300b_64_sessions": {
            "one_session_at_a_time_per_s": rate(SESS * PER, t_seq),
            "round_robin_one_record_per_session_per_s": rate(SESS * PER, t_rr),
        },
        "handshake_tls13_ecdsa_p256": {
            "full_server_side_per_s": rate(HS, hs_time),
            "resumed_server_side_per_s": rate(resumed, res_time),
            "server_session_setup_known_peer_per_s": rate(SETUP, t_warm),
            "server_session_setup_new_peer_per_s": rate(SETUP, t_cold),
        },
        "dtls12_200b": {
            "seal_records_per_s": rate(DN, t_dseal),
            "open_records_per_s": rate(DN, t_dopen),
            "allocations_per_sealed_record": (dtls_seal_allocs * 100.0).round() / 100.0,
            "allocations_per_opened_record": (dtls_open_allocs * 100.0).round() / 100.0,
        },
        "memory_idle_leg_bytes": {
            "server": servers_only / MEM_N as i64,
            "client": (both - servers_only) / MEM_N as i64,
            "size_of_tls_session": size_of,
        },
        "elapsed_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    });
    println!("{out}");
}
