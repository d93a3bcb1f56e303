//! The MG's control association with its MGC (H.248.1 §11), sans-IO.
//!
//! - On start, after a random restart-avalanche delay (§11.4: "MaxWaitDelay"), the MG sends
//!   `ServiceChange` on ROOT with Method=Restart, Reason 901 (cold boot) or 902 (warm boot) and
//!   Version=3 to the first configured MGC.
//! - Until the reply arrives it answers every request with error 505 (§11.3).
//! - A reply naming `MgcIdToTry` redirects registration to that MGC (§11.5), if configured.
//! - A reply with a lower `Version` lowers the version we speak (§11.3).
//! - If the MGC stops answering (the ServiceChange, a Notify, or an inactivity probe times out),
//!   the MG fails over to the next configured MGC with Method=Disconnected (§11.5).
//! - On shutdown it sends Method=Forced or Graceful (with Delay).
//! - Only configured MGC addresses are answered; everything else is dropped and counted.

use std::net::SocketAddr;
use std::time::Duration;

use mgw_core::time::Instant;

use super::ast::*;
use super::transaction::{Event, TransactionConfig, TransactionLayer, Transmit};

/// Why the MG (re)registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    /// 901 Cold Boot.
    Cold,
    /// 902 Warm Boot.
    Warm,
}

/// Association settings.
#[derive(Debug, Clone)]
pub struct AssociationConfig {
    /// MGCs in order of preference. Only these are answered.
    pub mgcs: Vec<SocketAddr>,
    /// Upper bound of the restart-avalanche delay (MaxWaitDelay, H.248.1 §11.4).
    pub max_avalanche_delay: Duration,
    /// Cold or warm restart.
    pub restart_reason: RestartReason,
    /// Highest version we speak.
    pub version: u8,
    /// ServiceChangeProfile to announce, e.g. `ETSI_IMS_ALG/1` (None: no profile).
    pub profile: Option<String>,
    /// Port for `ServiceChangeAddress` (None: omit).
    pub service_change_port: Option<u16>,
    /// Probe the MGC after this long without a message from it (None: never).
    pub inactivity_timeout: Option<Duration>,
    /// Wait before retrying the MGC list after every MGC failed.
    pub retry_cycle_delay: Duration,
    /// Transaction-layer settings.
    pub transaction: TransactionConfig,
}

impl Default for AssociationConfig {
    fn default() -> Self {
        AssociationConfig {
            mgcs: Vec::new(),
            max_avalanche_delay: Duration::from_secs(3),
            restart_reason: RestartReason::Cold,
            version: 3,
            profile: None,
            service_change_port: None,
            inactivity_timeout: Some(Duration::from_secs(60)),
            retry_cycle_delay: Duration::from_secs(5),
            transaction: TransactionConfig::default(),
        }
    }
}

/// Where the association stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting out the restart-avalanche delay (or the retry delay).
    Waiting {
        /// When registration starts.
        until: Instant,
    },
    /// ServiceChange sent, reply awaited.
    Registering {
        /// MGC asked.
        mgc: SocketAddr,
        /// Transaction ID of the ServiceChange.
        id: u32,
    },
    /// Registered: requests are served.
    Registered {
        /// The controlling MGC.
        mgc: SocketAddr,
    },
    /// Forced/Graceful ServiceChange sent.
    ShuttingDown,
    /// Out of service.
    Down,
}

/// Things the user of the association must know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssocEvent {
    /// Registration succeeded.
    Registered {
        /// The MGC.
        mgc: SocketAddr,
        /// Negotiated version.
        version: u8,
    },
    /// The MGC was lost; registration moves to the next one.
    Failover {
        /// The MGC lost.
        from: SocketAddr,
    },
    /// A request to handle (already checked: registered, from a configured MGC).
    Request {
        /// The MGC that sent the request.
        from: SocketAddr,
        /// The request.
        request: TransactionRequest,
    },
    /// Reply to a request the user sent with [`Association::send_request`].
    Reply {
        /// The reply.
        reply: TransactionReply,
    },
    /// A request the user sent got no reply.
    RequestFailed {
        /// Its ID.
        id: u32,
    },
    /// Shutdown completed.
    Down,
}

/// What the association dropped, refused or sent on its own, and its failovers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssocCounters {
    /// Datagrams from addresses that are not configured MGCs (dropped).
    pub rx_unknown_source: u64,
    /// Requests answered 505 before registration.
    pub rejected_unregistered: u64,
    /// Registrations sent.
    pub registrations: u64,
    /// Times the registered MGC stopped answering and registration moved to the next one.
    pub failovers: u64,
    /// Inactivity probes sent.
    pub probes: u64,
}

/// The MG side of the MG–MGC association.
pub struct Association {
    cfg: AssociationConfig,
    layer: TransactionLayer,
    state: State,
    /// Index in `cfg.mgcs` of the MGC being tried / in use.
    index: usize,
    /// MGCs tried in this cycle.
    tried: usize,
    redirects: u32,
    method: ServiceChangeMethod,
    reason: String,
    last_rx: Instant,
    probe: Option<u32>,
    shutdown_id: Option<u32>,
    events: std::collections::VecDeque<AssocEvent>,
    counters: AssocCounters,
}

impl Association {
    /// Start an association at `now`. `mid` is our mId; `first_id` the first transaction ID;
    /// `random` any random value — it picks the avalanche delay in `[0, max_avalanche_delay)`.
    pub fn new(cfg: AssociationConfig, mid: Mid, first_id: u32, random: u64, now: Instant) -> Self {
        let max = u64::try_from(cfg.max_avalanche_delay.as_millis()).unwrap_or(u64::MAX);
        let delay = Duration::from_millis(if max == 0 { 0 } else { random % max });
        let layer = TransactionLayer::new(cfg.transaction.clone(), mid, cfg.version, first_id);
        let reason = match cfg.restart_reason {
            RestartReason::Cold => "901 Cold Boot",
            RestartReason::Warm => "902 Warm Boot",
        };
        Association {
            layer,
            state: State::Waiting { until: now + delay },
            index: 0,
            tried: 0,
            redirects: 0,
            method: ServiceChangeMethod::Restart,
            reason: reason.into(),
            last_rx: now,
            probe: None,
            shutdown_id: None,
            events: Default::default(),
            counters: AssocCounters::default(),
            cfg,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The counters since the association was created.
    pub fn counters(&self) -> AssocCounters {
        self.counters
    }

    /// The transaction layer (for its counters).
    pub fn transactions(&self) -> &TransactionLayer {
        &self.layer
    }

    fn is_configured(&self, a: SocketAddr) -> bool {
        self.cfg.mgcs.contains(&a)
    }

    /// Feed a datagram (or TPKT payload) from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if !self.is_configured(from) {
            self.counters.rx_unknown_source += 1;
            return;
        }
        self.last_rx = now;
        self.layer.handle_message(now, from, bytes);
        self.process_layer_events(now);
    }

    fn process_layer_events(&mut self, now: Instant) {
        while let Some(e) = self.layer.poll_event() {
            match e {
                Event::Request { from, request, .. } => {
                    if let Some(to) = self.handoff_target(&request) {
                        // §11.5: the MGC hands the MG over to another MGC. Accept, then
                        // register there with Method=HandOff.
                        let reply = ReplyResult::Actions(vec![ActionReply {
                            context: ContextId::Null,
                            properties: ContextProperties::default(),
                            replies: vec![CommandReply::ServiceChange(ServiceChangeReply {
                                termination: TerminationId::root(),
                                result: ServiceChangeResult::Accepted,
                            })],
                            error: None,
                        }]);
                        let _ = self.layer.send_reply(now, from, request.id, reply);
                        self.index = to;
                        self.tried = 0;
                        self.redirects = 0;
                        self.method = ServiceChangeMethod::HandOff;
                        self.reason = "903 MGC Directed Change".into();
                        self.register(now);
                        continue;
                    }
                    if matches!(self.state, State::Registered { .. }) {
                        self.events.push_back(AssocEvent::Request { from, request });
                    } else {
                        // H.248.1 §11.3: nothing is served before the ServiceChange reply.
                        self.counters.rejected_unregistered += 1;
                        let _ = self.layer.send_reply(
                            now,
                            from,
                            request.id,
                            ReplyResult::Error(ErrorDescriptor::new(
                                505,
                                "Transaction Request Received before a ServiceChange Reply has been received",
                            )),
                        );
                    }
                }
                Event::Reply {
                    from,
                    version,
                    reply,
                    ..
                } => self.on_reply(now, from, version, reply),
                Event::RequestTimedOut { to, id } => self.on_timeout(now, to, id),
                Event::PeerError { .. } => {}
            }
        }
    }

    /// Index of the configured MGC named by a `ServiceChange ROOT {Method=HandOff,
    /// MgcIdToTry=...}` request from the controlling MGC.
    fn handoff_target(&self, request: &TransactionRequest) -> Option<usize> {
        if !matches!(self.state, State::Registered { .. }) {
            return None;
        }
        let [action] = request.actions.as_slice() else {
            return None;
        };
        let [cmd] = action.commands.as_slice() else {
            return None;
        };
        let Command::ServiceChange(sc) = &cmd.command else {
            return None;
        };
        if !sc.termination.is_root() || sc.parms.method != Some(ServiceChangeMethod::HandOff) {
            return None;
        }
        let Some(Mid::Ip { addr, port }) = &sc.parms.mgc_id else {
            return None;
        };
        let to = SocketAddr::new(*addr, port.unwrap_or(2944));
        self.cfg.mgcs.iter().position(|m| *m == to)
    }

    fn on_reply(&mut self, now: Instant, from: SocketAddr, version: u8, reply: TransactionReply) {
        if let State::Registering { id, .. } = self.state {
            if reply.id == id {
                self.on_registration_reply(now, from, version, &reply);
                return;
            }
        }
        if self.shutdown_id == Some(reply.id) {
            self.state = State::Down;
            self.events.push_back(AssocEvent::Down);
            return;
        }
        if self.probe == Some(reply.id) {
            self.probe = None;
            return;
        }
        self.events.push_back(AssocEvent::Reply { reply });
    }

    fn on_registration_reply(
        &mut self,
        now: Instant,
        from: SocketAddr,
        version: u8,
        reply: &TransactionReply,
    ) {
        let sc = match &reply.result {
            ReplyResult::Actions(a) => a.iter().flat_map(|a| &a.replies).find_map(|r| match r {
                CommandReply::ServiceChange(s) => Some(s),
                _ => None,
            }),
            ReplyResult::Error(_) => None,
        };
        let Some(sc) = sc else {
            // An error (or a reply without ServiceChange): this MGC refuses; try the next.
            self.next_mgc(now);
            return;
        };
        match &sc.result {
            ServiceChangeResult::Error(_) => self.next_mgc(now),
            ServiceChangeResult::Accepted | ServiceChangeResult::Parms(_) => {
                let parms = match &sc.result {
                    ServiceChangeResult::Parms(p) => Some(p),
                    _ => None,
                };
                if let Some(Mid::Ip { addr, port }) = parms.and_then(|p| p.mgc_id.as_ref()) {
                    // §11.5: register with the MGC named in MgcIdToTry instead.
                    let to = SocketAddr::new(*addr, port.unwrap_or(2944));
                    if let Some(i) = self.cfg.mgcs.iter().position(|m| *m == to) {
                        if self.redirects < 4 {
                            self.redirects += 1;
                            self.index = i;
                            self.register(now);
                            return;
                        }
                    }
                    self.next_mgc(now);
                    return;
                }
                let v = parms
                    .and_then(|p| p.version)
                    .unwrap_or(version)
                    .clamp(1, self.cfg.version);
                self.layer.set_version(v);
                self.state = State::Registered { mgc: from };
                self.tried = 0;
                self.redirects = 0;
                self.last_rx = now;
                self.events.push_back(AssocEvent::Registered {
                    mgc: from,
                    version: v,
                });
            }
        }
    }

    fn on_timeout(&mut self, now: Instant, to: SocketAddr, id: u32) {
        match self.state {
            State::Registering { id: sc, .. } if sc == id => self.next_mgc(now),
            State::Registered { mgc } if mgc == to => {
                if self.probe == Some(id) {
                    self.probe = None;
                } else {
                    self.events.push_back(AssocEvent::RequestFailed { id });
                }
                // §11.5: the MGC stopped answering; register with the next one, saying why.
                self.counters.failovers += 1;
                self.events.push_back(AssocEvent::Failover { from: mgc });
                self.method = ServiceChangeMethod::Disconnected;
                self.reason = "900 Service Restored".into();
                self.next_mgc(now);
            }
            State::ShuttingDown if self.shutdown_id == Some(id) => {
                self.state = State::Down;
                self.events.push_back(AssocEvent::Down);
            }
            _ => self.events.push_back(AssocEvent::RequestFailed { id }),
        }
    }

    fn next_mgc(&mut self, now: Instant) {
        if self.cfg.mgcs.is_empty() {
            self.state = State::Down;
            return;
        }
        self.tried += 1;
        self.redirects = 0;
        self.index = (self.index + 1) % self.cfg.mgcs.len();
        if self.tried >= self.cfg.mgcs.len() {
            // Every MGC failed in this cycle: wait, then start over.
            self.tried = 0;
            self.state = State::Waiting {
                until: now + self.cfg.retry_cycle_delay,
            };
        } else {
            self.register(now);
        }
    }

    fn register(&mut self, now: Instant) {
        let Some(&mgc) = self.cfg.mgcs.get(self.index) else {
            self.state = State::Down;
            return;
        };
        self.layer.set_version(self.cfg.version);
        let parms = ServiceChangeParms {
            method: Some(self.method.clone()),
            reason: Some(self.reason.clone()),
            version: Some(self.cfg.version),
            profile: self.cfg.profile.clone(),
            address: self.cfg.service_change_port.map(ServiceChangeAddress::Port),
            ..ServiceChangeParms::default()
        };
        let id = self
            .layer
            .send_request(now, mgc, vec![service_change(parms)]);
        self.counters.registrations += 1;
        self.state = State::Registering { mgc, id };
    }

    /// Send a request (typically Notify) to the controlling MGC; `None` if not registered.
    pub fn send_request(&mut self, now: Instant, actions: Vec<ActionRequest>) -> Option<u32> {
        match self.state {
            State::Registered { mgc } => Some(self.layer.send_request(now, mgc, actions)),
            _ => None,
        }
    }

    /// Answer a request delivered as [`AssocEvent::Request`].
    pub fn reply(&mut self, now: Instant, to: SocketAddr, id: u32, result: ReplyResult) {
        let _ = self.layer.send_reply(now, to, id, result);
    }

    /// Take the MG out of service: ServiceChange ROOT with Method=Forced (at once) or Graceful
    /// (after `delay`), per §11.6 / §7.2.8.
    pub fn shutdown(&mut self, now: Instant, graceful: Option<Duration>) {
        let State::Registered { mgc } = self.state else {
            self.state = State::Down;
            self.events.push_back(AssocEvent::Down);
            return;
        };
        let parms = ServiceChangeParms {
            method: Some(if graceful.is_some() {
                ServiceChangeMethod::Graceful
            } else {
                ServiceChangeMethod::Forced
            }),
            reason: Some("905 Termination taken out of service".into()),
            delay: graceful.map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
            ..ServiceChangeParms::default()
        };
        self.shutdown_id = Some(
            self.layer
                .send_request(now, mgc, vec![service_change(parms)]),
        );
        self.state = State::ShuttingDown;
    }

    /// Earliest time to call [`Association::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = match self.state {
            State::Waiting { until } => Some(until),
            State::Registered { .. } if self.probe.is_none() => {
                self.cfg.inactivity_timeout.map(|d| self.last_rx + d)
            }
            _ => None,
        };
        match (own, self.layer.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Run timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.process_layer_events(now);
        match self.state {
            State::Waiting { until } if until <= now => self.register(now),
            State::Registered { mgc } if self.probe.is_none() => {
                if let Some(d) = self.cfg.inactivity_timeout {
                    if self.last_rx + d <= now {
                        // H.248.14 inactivity timeout: probe the MGC with Notify(it/ito); if the
                        // probe goes unanswered the transaction layer times out and we fail over.
                        self.counters.probes += 1;
                        let probe = ActionRequest {
                            context: ContextId::Null,
                            properties: ContextProperties::default(),
                            commands: vec![CommandRequest {
                                optional: false,
                                wildcard_reply: false,
                                command: Command::Notify(NotifyRequest {
                                    termination: TerminationId::root(),
                                    observed_events: ObservedEventsDescriptor {
                                        request_id: 0,
                                        events: vec![ObservedEvent {
                                            timestamp: None,
                                            name: "it/ito".into(),
                                            stream: None,
                                            parameters: Vec::new(),
                                        }],
                                    },
                                    error: None,
                                }),
                            }],
                        };
                        self.probe = Some(self.layer.send_request(now, mgc, vec![probe]));
                    }
                }
            }
            _ => {}
        }
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.layer.poll_transmit()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<AssocEvent> {
        self.events.pop_front()
    }
}

fn service_change(parms: ServiceChangeParms) -> ActionRequest {
    ActionRequest {
        context: ContextId::Null,
        properties: ContextProperties::default(),
        commands: vec![CommandRequest {
            optional: false,
            wildcard_reply: false,
            command: Command::ServiceChange(ServiceChangeRequest {
                termination: TerminationId::root(),
                parms,
            }),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h248::parse_message;

    fn mgc(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 2944))
    }
    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }
    fn assoc(mgcs: Vec<SocketAddr>) -> Association {
        Association::new(
            AssociationConfig {
                mgcs,
                profile: Some("ETSI_IMS_ALG/1".into()),
                ..AssociationConfig::default()
            },
            Mid::Ip {
                addr: "127.0.0.1".parse().unwrap(),
                port: Some(2944),
            },
            100,
            1234,
            ms(0),
        )
    }
    fn out(a: &mut Association) -> Vec<(SocketAddr, String)> {
        std::iter::from_fn(|| a.poll_transmit())
            .map(|t| (t.to, String::from_utf8(t.bytes).unwrap()))
            .collect()
    }
    fn sc_id(text: &str) -> u32 {
        let m = parse_message(text.as_bytes()).unwrap();
        let MessageBody::Transactions(t) = m.body else {
            panic!()
        };
        let Transaction::Request(r) = &t[0] else {
            panic!()
        };
        r.id
    }
    fn start(a: &mut Association) -> (SocketAddr, u32) {
        let t = a.poll_timeout().unwrap();
        assert_eq!(t, ms(1234), "avalanche delay = random % max");
        a.handle_timeout(t);
        let o = out(a);
        assert_eq!(o.len(), 1);
        (o[0].0, sc_id(&o[0].1))
    }

    // ---- Waiting / Registering ----

    #[test]
    fn restart_service_change_after_avalanche_delay() {
        let mut a = assoc(vec![mgc(2)]);
        assert!(matches!(a.state(), State::Waiting { .. }));
        a.handle_timeout(ms(1000));
        assert!(out(&mut a).is_empty(), "nothing before the delay");
        let t = a.poll_timeout().unwrap();
        a.handle_timeout(t);
        let o = out(&mut a);
        assert_eq!(o[0].0, mgc(2));
        assert_eq!(
            o[0].1,
            "!/3 [127.0.0.1]:2944 T=100{C=-{SC=ROOT{SV{MT=RS,RE=\"901 Cold Boot\",PF=ETSI_IMS_ALG/1,V=3}}}}"
        );
    }

    #[test]
    fn requests_before_registration_get_505() {
        let mut a = assoc(vec![mgc(2)]);
        let (_, _) = start(&mut a);
        a.handle_datagram(ms(1300), mgc(2), b"!/3 [127.0.0.2]:2944 T=5{C=${A=ip/$}}");
        let o = out(&mut a);
        assert!(o[0].1.contains("P=5{ER=505"), "{o:?}");
        assert_eq!(a.poll_event(), None);
        assert_eq!(a.counters().rejected_unregistered, 1);
    }

    #[test]
    fn unknown_sources_are_dropped_and_counted() {
        let mut a = assoc(vec![mgc(2)]);
        a.handle_datagram(ms(0), mgc(9), b"!/3 [127.0.0.9]:2944 T=5{C=${A=ip/$}}");
        assert!(out(&mut a).is_empty());
        assert_eq!(a.counters().rx_unknown_source, 1);
    }

    #[test]
    fn reply_registers_and_negotiates_version() {
        let mut a = assoc(vec![mgc(2)]);
        let (to, id) = start(&mut a);
        a.handle_datagram(
            ms(1300),
            to,
            format!("!/2 [127.0.0.2]:2944 P={id}{{C=-{{SC=ROOT{{SV{{V=2}}}}}}}}").as_bytes(),
        );
        assert_eq!(
            a.poll_event(),
            Some(AssocEvent::Registered {
                mgc: mgc(2),
                version: 2
            })
        );
        assert_eq!(a.transactions().version(), 2);
        a.handle_datagram(ms(1400), mgc(2), b"!/2 [127.0.0.2]:2944 T=6{C=${A=ip/$}}");
        assert!(
            matches!(a.poll_event(), Some(AssocEvent::Request { request, .. }) if request.id == 6)
        );
    }

    #[test]
    fn mgc_id_to_try_redirects_to_that_mgc() {
        let mut a = assoc(vec![mgc(2), mgc(3)]);
        let (to, id) = start(&mut a);
        assert_eq!(to, mgc(2));
        a.handle_datagram(
            ms(1300),
            to,
            format!("!/3 [127.0.0.2]:2944 P={id}{{C=-{{SC=ROOT{{SV{{MG=[127.0.0.3]:2944}}}}}}}}")
                .as_bytes(),
        );
        let o = out(&mut a);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].0, mgc(3));
        assert!(o[0].1.contains("MT=RS"));
        assert!(matches!(a.state(), State::Registering { mgc: m, .. } if m == mgc(3)));
    }

    #[test]
    fn unanswered_registration_moves_to_next_mgc_then_waits() {
        let mut a = assoc(vec![mgc(2), mgc(3)]);
        let (to, _) = start(&mut a);
        assert_eq!(to, mgc(2));
        let mut sent_to = Vec::new();
        for _ in 0..100 {
            let Some(t) = a.poll_timeout() else { break };
            a.handle_timeout(t);
            for (to, text) in out(&mut a) {
                if text.contains("SC=ROOT") && !sent_to.contains(&to) {
                    sent_to.push(to);
                }
            }
            if matches!(a.state(), State::Waiting { .. }) {
                break;
            }
        }
        assert_eq!(sent_to, vec![mgc(2), mgc(3)]);
        assert!(matches!(a.state(), State::Waiting { .. }));
    }

    // ---- Registered ----

    fn registered(a: &mut Association) {
        let (to, id) = start(a);
        a.handle_datagram(
            ms(1300),
            to,
            format!("!/3 [127.0.0.2]:2944 P={id}{{C=-{{SC=ROOT}}}}").as_bytes(),
        );
        assert!(matches!(
            a.poll_event(),
            Some(AssocEvent::Registered { .. })
        ));
        out(a);
    }

    #[test]
    fn inactivity_probe_then_failover_with_disconnected() {
        let mut a = assoc(vec![mgc(2), mgc(3)]);
        registered(&mut a);
        // Stale timers may wake us early (spurious wake-ups are allowed); nothing is sent then.
        let o = loop {
            let t = a.poll_timeout().unwrap();
            a.handle_timeout(t);
            let o = out(&mut a);
            if !o.is_empty() {
                assert_eq!(t, ms(61_300));
                break o;
            }
        };
        assert!(o[0].1.contains("N=ROOT{OE=0{it/ito}}"), "{o:?}");
        // No answer: retransmissions, then failover.
        let mut failover = false;
        for _ in 0..20 {
            let Some(t) = a.poll_timeout() else { break };
            a.handle_timeout(t);
            while let Some(e) = a.poll_event() {
                failover |= e == AssocEvent::Failover { from: mgc(2) };
            }
            if failover {
                break;
            }
        }
        assert!(failover);
        let o = out(&mut a);
        let last = o.last().unwrap();
        assert_eq!(last.0, mgc(3));
        assert!(last.1.contains("MT=DC"), "{}", last.1);
    }

    #[test]
    fn graceful_shutdown_sends_delay_and_goes_down_on_reply() {
        let mut a = assoc(vec![mgc(2)]);
        registered(&mut a);
        a.shutdown(ms(2000), Some(Duration::from_secs(10)));
        let o = out(&mut a);
        assert!(o[0].1.contains("MT=GR"), "{o:?}");
        assert!(o[0].1.contains("DL=10000"), "{o:?}");
        let id = sc_id(&o[0].1);
        a.handle_datagram(
            ms(2100),
            mgc(2),
            format!("!/3 [127.0.0.2]:2944 P={id}{{C=-{{SC=ROOT}}}}").as_bytes(),
        );
        assert_eq!(a.poll_event(), Some(AssocEvent::Down));
        assert_eq!(a.state(), State::Down);
    }

    #[test]
    fn mgc_directed_handoff() {
        let mut a = assoc(vec![mgc(2), mgc(3)]);
        registered(&mut a);
        a.handle_datagram(
            ms(2000),
            mgc(2),
            b"!/3 [127.0.0.2]:2944 T=9{C=-{SC=ROOT{SV{MT=HO,MG=[127.0.0.3]:2944,RE=\"903 MGC Directed Change\"}}}}",
        );
        let o = out(&mut a);
        assert_eq!(o.len(), 2, "{o:?}");
        assert_eq!(o[0].0, mgc(2));
        assert!(o[0].1.ends_with("P=9{C=-{SC=ROOT}}"), "{}", o[0].1);
        assert_eq!(o[1].0, mgc(3));
        assert!(o[1].1.contains("MT=HO"), "{}", o[1].1);
        assert_eq!(a.poll_event(), None, "not passed to the MG model");
    }

    #[test]
    fn forced_shutdown() {
        let mut a = assoc(vec![mgc(2)]);
        registered(&mut a);
        a.shutdown(ms(2000), None);
        assert!(out(&mut a)[0].1.contains("MT=FO"));
    }
}
