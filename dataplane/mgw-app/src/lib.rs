//! mgw-app: application awareness for mgwd's relay: MSRP (RFC 4975/4976), BFCP (RFC 8855) and
//! T.38 UDPTL (ITU-T T.38 clause 9 / Annex D style over UDP).
//!
//! Every parser here is sans-IO: bytes (and, for reassembly, `now`) in; events, ranges and
//! counters out. Nothing allocates once a flow is set up (buffers are sized at construction;
//! `tests/no_alloc.rs` proves it with a counting allocator), nothing reads a clock, and no input
//! can make a parser panic: bad input is a small error enum that the relay counts.
//!
//! The writers are the other way round, for the peers of the lab, the benchmarks and the tests:
//! [`msrp::MsrpSend`], [`msrp::MsrpReport`] and [`msrp::MsrpResponse`] for MSRP,
//! [`bfcp::MessageWriter`] and one function per primitive (such as [`bfcp::floor_request`]) for
//! BFCP. Each appends a whole message to a caller's `Vec<u8>` that the parsers here read back.
//!
//! See [`manual`] for how the relay is meant to drive these and why they are shaped this way.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bfcp;
pub mod msrp;
pub mod udptl;

/// Design notes: how the relay uses this crate, and the decisions behind it.
///
/// # MSRP in aware mode
/// One [`msrp::MsrpParser`] per direction per leg, created at install time with the leg's
/// [`msrp::MsrpConfig`] (it allocates its header buffer then, never again). For each chunk of
/// decrypted TCP payload the relay calls [`msrp::MsrpParser::feed`] and drains the
/// [`msrp::Feed`] until `Ok(None)`:
/// - `StartLine`, `Header`: informational (statistics, tracing); spans index
///   [`msrp::MsrpParser::head`].
/// - `HeadersEnd`: the head is complete. Without CEMA, write
///   [`msrp::MsrpRewriter::rewrite_head`] (or [`msrp::rewrite_head_between`] over URIs the
///   relay keeps inline, as the worker does) into the other leg's send buffer; with CEMA (or
///   agnostic mode), forward `head()` as is. A rewritten head grows by at most
///   [`msrp::LegPathsRef::max_growth`] of the outbound leg, which is how the worker sizes each
///   parser call so that its output always fits the room it has.
/// - `Body { range }`: forward `chunk[range]` in place: the parser never copies a body.
/// - `BodyCarry`: forward [`msrp::MsrpParser::carried`] (≤ 44 bytes that straddled two chunks
///   and looked like the start of this frame's end-line but were not) before the next `Body`.
/// - `End`: write [`msrp::MsrpParser::write_end_line`] (it includes the CRLF that ends the body).
/// - `Err(_)`: the stream is unsynchronised; count it and release the leg (the parser stays
///   failed).
///
/// Why the head is copied but the body is not: a head is small (~200 bytes), must be contiguous
/// to be rewritten, and can straddle TCP segments; bodies are most of the bytes. The end-line
/// search is exact (CR + LF + 7 dashes + this transaction id + flag + CRLF); CR appears only at
/// offset 0 of that pattern, so a failed partial match never needs a KMP-style fallback.
///
/// The rewrite rule (documented on [`msrp::MsrpRewriter`]): the MGW is the MSRP peer of each
/// endpoint (B2BUA style). A frame arriving on leg X must have `To-Path` = the MGW's own URI on
/// leg X. It leaves on leg Y with `To-Path` = leg Y's remote `a=path` and `From-Path` = the MGW's
/// URI on leg Y. Requests and responses are treated the same way.
///
/// Counters ([`msrp::MsrpStats`]): requests per method (SEND/REPORT/AUTH/other), responses per
/// status class, chunk flags, bytes and body bytes, errors. Responses are not attributed to a
/// method: that would need a transaction table, which the relay does not keep.
///
/// # BFCP
/// - TCP/TLS legs: [`bfcp::StreamFramer`] (version 1 only; F must be clear). Messages wholly
///   inside a chunk are reported in place; only a message that straddles chunks is copied.
///   Framing errors (bad version, F set, too large) are fatal to the leg; a message whose
///   attributes are malformed but whose length is sound is dropped, counted, and the stream
///   continues.
/// - UDP/DTLS legs: [`bfcp::Reassembler`] (version 2, fragments reassembled in a fixed number of
///   slots, each with a deadline from `now + timeout`; the relay calls `handle_timeout` from its
///   timer wheel at [`bfcp::Reassembler::poll_timeout`]).
/// - Interworking: UDP→TCP = reassemble, then [`bfcp::to_reliable`] (version 2 → 1).
///   TCP→UDP = [`bfcp::Fragmenter`] under the path MTU (version 1 → 2). The worker does both
///   for a context of one stream leg and one UDP/DTLS leg (aware BFCP only).
/// - **(verify)** fragment-field semantics: see [`bfcp::FRAGMENT_SEMANTICS`]. The UDP
///   retransmission/ack behaviour of RFC 8855 §6.2 is an endpoint's job and is not done here.
///
/// # UDPTL
/// [`udptl::UdptlFlow`] per direction: parses each datagram (validating every length against
/// the datagram and `T38FaxMaxDatagram`) and counts received, lost (gaps), recovered (a missing
/// sequence number later carried as a secondary IFP, or repairable from one FEC entry), late,
/// duplicates, resyncs, malformed. It keeps a 64-packet bitmap, not the packets: the relay
/// forwards datagrams unchanged and the far end does the actual repair. FEC repair is counted
/// when the FEC packet arrives; older FEC packets are not re-examined later (Asterisk does).
///
/// # Verified against real peers
/// `tests/tshark.rs`: tshark decodes our MSRP (after rewriting), BFCP (v1 over TCP) and UDPTL
/// (redundancy and FEC) with no malformed packet. tshark 4.0 (Debian 12) cannot decode BFCP
/// version 2 (its dissector accepts only a first octet of 0x20/0x30; fixed in 4.2), so version-2
/// datagrams are only checked for malformation there.
pub mod manual {}
