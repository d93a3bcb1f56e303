//! # Manual: how the control plane is put together, and why
//!
//! This module holds no code. It records the design decisions, defaults and known limits of the
//! crate, in the spirit of rustls' `manual` module.
//!
//! ## Layers
//!
//! ```text
//!  UDP datagram / TPKT frame
//!        │
//!  h248::transaction   duplicate cache, Pending, acks, retransmission   (sans-IO)
//!        │
//!  h248::association   registration, 505 gate, failover, shutdown        (sans-IO)
//!        │ AssocEvent::Request
//!  h248::mg            contexts, terminations, commands, error codes     (sans-IO)
//!        │ uses
//!  procedures          SDP + properties → LegSpec + Local SDP answer     (pure)
//!        │ LegChange
//!  server              sockets + clock; hands LegChanges to the binary   (I/O)
//! ```
//!
//! Every layer below `server` takes bytes (or parsed requests) and a
//! [`mgw_core::time::Instant`], and returns bytes, events and a deadline. Randomness (the
//! restart-avalanche delay, the first transaction ID) is passed in.
//!
//! ## Codec
//!
//! - The parser is recursive descent over bytes; the grammar's nesting depth is fixed, so no
//!   input can exhaust the stack. Errors carry the H.248.8 code (400 syntax, 406 version,
//!   501 not implemented) and the byte offset, line and column of the offending token.
//! - Not implemented (answered 501): Modem, Mux, EventBuffer descriptors; signal lists; embedded
//!   events/signals; `ContextAudit`; v3 individual audit descriptors and context attribute
//!   audits; authentication headers; MTP addresses; topology stream triples.
//! - SDP in Local/Remote is kept as text (`}` escaped as `\}`) and parsed by [`crate::sdp`],
//!   which is lossless. The emitter writes SDP lines unindented and the closing brace at column
//!   0: tshark's megaco dissector otherwise reports the indentation as a malformed SDP line.
//! - Compact style is the default on the wire; pretty style is for logs and for MGCs that want
//!   it. Both are tested against tshark and Erlang megaco.
//!
//! ## Transaction layer defaults (H.248.1 Annex D)
//!
//! | setting | default |
//! | --- | --- |
//! | `normalMGExecutionTime` (Pending after) | 100 ms, at most 20 Pendings |
//! | `LONG-TIMER` (reply retention) | 30 s, or until `TransactionResponseAck` |
//! | request retransmission | 500 ms doubling to 4 s, 5 retransmissions |
//! | after peer's Pending | wait 2 s for more, then resend the request (UDP; TCP waits the long timer); give up after 50 Pendings |
//! | max message | 65 507 bytes (510 above), 64 transactions (413 above) |
//! | segmentation (`max_pdu`) | off |
//!
//! A message that fails to parse is answered per transaction ID found by a best-effort scan
//! (`T=<n>`), else with a message-level error. Over TCP (`reliable`), requests are not
//! retransmitted. v3 segmentation (`max_pdu`, off by default) splits a reply with several action
//! replies over numbered segments, the last marked `END`; an action reply is never split. Segment
//! replies from the peer are counted; a lost segment is recovered when the peer repeats its
//! request (all segments are replayed). There is no per-segment retransmission timer
//! (`MGSegmentationTimer`).
//!
//! ## Association
//!
//! Restart after `random % max_avalanche_delay`; Method=Restart, Reason 901/902, Version=3.
//! Until the reply every request gets 505. `MgcIdToTry` redirects (if the MGC is configured; at
//! most 4 redirects). Version in the reply lowers ours. With no message from the MGC for the
//! inactivity time the MG sends `Notify ROOT{OE=0{it/ito}}` (H.248.14); if that or any other
//! request times out it fails over to the next MGC with Method=Disconnected, Reason 900. Only
//! configured MGC addresses are answered. An MGC-originated `ServiceChange ROOT` with
//! Method=HandOff and `MgcIdToTry` naming a configured MGC is accepted and the MG registers there
//! with Method=HandOff, Reason 903; any other MGC-originated ServiceChange is answered 501.
//!
//! ## MG model
//!
//! - Terminations are ephemeral (`$` or `prefix/$` → `prefix/<n>`); an Add naming a specific
//!   termination that does not exist is 430, one already in a context 433.
//! - Commands of an action run in order; the first failing non-optional command ends the action
//!   with its error (§8.2.1); `O-` commands report their error in their own reply. A half-made
//!   Add is undone, and an action that leaves its context empty deletes it (§6.1.1).
//! - Subtract without an Audit descriptor returns `nt/os`, `nt/or`, `nt/dur` (§7.2.3); the
//!   octet counters come from [`crate::h248::mg::Mg::update_stats`].
//! - Events are checked against the package registry (440 unknown package, 451 unknown event);
//!   [`crate::h248::mg::Mg::observe`] turns a data-plane event into a Notify when it was armed.
//! - Error codes used: 400 401 406 411 413 421 430 431 433 434 435 440 445 449 451 452 453
//!   500 501 505 510.
//!
//! ## Procedures (eMEDIASEC)
//!
//! - The transport and application come from the `m=` proto (`TCP/TLS/MSRP`, `UDP/TLS/UDPTL`,
//!   `TCP/BFCP`, ...); Local and Remote must agree (449).
//! - TCP role (RFC 4145): remote `active` → MG passive, `passive` → MG active, `actpass` → MG
//!   active (it knows where to connect), absent → treated as `active` (RFC 4145 default).
//!   An explicit `a=setup` in the MGC's Local SDP is an order and must not contradict the
//!   Remote (449). `tcp/mode=merge` forces passive. `a=connection:existing` keeps the previous
//!   role and connection (421 if there is none).
//! - The (D)TLS client is the TCP-active side (RFC 8122 §6, RFC 5763 §5). A secure Remote SDP
//!   must carry `a=fingerprint` (449).
//! - Establishment is Delayed when `tcp/estab=delayed` or when the MG is active without a known
//!   remote address (and not latching); Hold for `holdconn`.
//! - Ports come from a per-realm allocator (`ipdc/realm`, the first realm by default); 510 when
//!   a realm is exhausted. The Local SDP answer fills `c=`, the `m=` port, `a=setup`,
//!   `a=connection` and, for TLS/DTLS, `a=fingerprint` with the MG's fingerprint (passed in).
//!
//! ## Server
//!
//! [`crate::server::Server`] owns one UDP socket (or TCP connections to the MGCs, TPKT-framed),
//! reads the clock once per `poll`, and executes requests on the model. With
//! `defer_replies = false` replies go out at once and leg changes come back as
//! `ServerEvent::Leg`. With `defer_replies = true` each transaction with leg changes yields
//! `ServerEvent::Execute { token, changes }` and its reply is held (the transaction layer sends
//! Pending after 100 ms) until `Server::complete(token, Ok(()))`; `Err(e)` answers the MGC with
//! a transaction error instead (the model is not rolled back; the MGC subtracts). A held reply
//! not completed within `pending_after × max_pendings` (2 s by default: as long as the MG may
//! keep the MGC waiting with Pending) goes out as error 500, once, and the server reports
//! `ServerEvent::Expired { token }`; the token is void after that.
//!
//! Nothing in the server waits on a peer. A failed `send_to` is counted
//! (`ServerCounters::transmit_errors`) and left to retransmission; a poll fails only on an
//! input error, after what it already received has been processed. Over TCP the sockets are
//! non-blocking (mio): a connect is abandoned after `TCP_CONNECT_TIMEOUT` (2 s), what the MGC
//! has not read waits in a queue of at most `TCP_QUEUE_MAX` (1 MiB) per connection, an MGC that
//! lets it fill is cut off (`tcp_queue_overflow`; the MG connects again for its next message,
//! and the association's timers fail over if the MGC stays silent), and a poll reads at most
//! `TCP_READS_PER_POLL` buffers of 64 kB per connection. TPKT reassembly costs what it takes
//! in, however small the frames.
//!
//! ## Unverified identifiers
//!
//! The package names of H.248.89 (TCP), H.248.90 (TLS) and H.248.93 (DTLS), and a few others,
//! could not be checked against the Recommendations; they are marked `verified: false` in
//! [`crate::h248::packages::PACKAGES`], the only place that names them.
