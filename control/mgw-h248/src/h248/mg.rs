//! The MG model (H.248.1 §6, §7): contexts, ephemeral terminations, streams, and the commands
//! that act on them. Executing a transaction yields its reply and the list of [`LegChange`]s the
//! data plane must apply.
//!
//! Semantics (H.248.1 §8.2.1): the commands of an action run in order; the first failing
//! command that is not optional (`O-`) stops the action and its error closes the action reply.
//! A context that ends an action without terminations ceases to exist (§6.1.1).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use mgw_core::time::Instant;

use super::ast::*;
use super::packages::{self, ItemKind};
use crate::procedures::{derive_leg, LegInput, LegSpec, ProcError, Realms};

/// Limits on the MG model, and how it names the terminations it chooses.
#[derive(Debug, Clone)]
pub struct MgConfig {
    /// Most contexts at once.
    pub max_contexts: usize,
    /// Most terminations in the whole MG (every context); an Add beyond it is refused with
    /// error 510 "insufficient resources" (H.248.1 §14.2).
    pub max_terminations: usize,
    /// Most terminations per context.
    pub max_terminations_per_context: usize,
    /// Prefix of ephemeral termination names (`ip` → `ip/1`, `ip/2`, ...).
    pub termination_prefix: String,
}

impl Default for MgConfig {
    fn default() -> Self {
        MgConfig {
            max_contexts: 100_000,
            max_terminations: 200_000,
            max_terminations_per_context: 4,
            termination_prefix: "ip".into(),
        }
    }
}

/// What the data plane must do after a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegChange {
    /// A new leg.
    Install {
        /// The ContextID the MG holds the termination in.
        context: u32,
        /// The TerminationID, as the MG chose it on Add.
        termination: String,
        /// The StreamID within the termination's Media descriptor (1 when not given).
        stream: u16,
        /// The leg.
        spec: LegSpec,
    },
    /// An existing leg changed (Modify / Move).
    Update {
        /// The ContextID the MG holds the termination in.
        context: u32,
        /// The TerminationID, as the MG chose it on Add.
        termination: String,
        /// The StreamID within the termination's Media descriptor (1 when not given).
        stream: u16,
        /// The new leg.
        spec: LegSpec,
    },
    /// The leg is gone (Subtract).
    Release {
        /// The ContextID the MG holds the termination in.
        context: u32,
        /// The TerminationID, as the MG chose it on Add.
        termination: String,
        /// The StreamID within the termination's Media descriptor (1 when not given).
        stream: u16,
        /// The leg as it was.
        spec: LegSpec,
    },
    /// The MGC played a signal (e.g. establish TCP / TLS now).
    Signal {
        /// The ContextID the MG holds the termination in.
        context: u32,
        /// The TerminationID, as the MG chose it on Add.
        termination: String,
        /// `package/signal`.
        name: String,
    },
}

/// Traffic counters of a termination, fed by the data plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TerminationStats {
    /// Octets sent (`nt/os`).
    pub octets_sent: u64,
    /// Octets received (`nt/or`).
    pub octets_received: u64,
}

/// One stream of a termination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// The LocalControl mode; SendRecv until the MGC sets one.
    pub mode: StreamMode,
    /// LocalControl properties.
    pub properties: Vec<PropertyParm>,
    /// Local SDP (the MG's answer once a leg exists).
    pub local: Option<String>,
    /// Remote SDP.
    pub remote: Option<String>,
    /// The derived leg.
    pub leg: Option<LegSpec>,
}

/// An ephemeral termination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// The TerminationID the MG chose on Add (`prefix/n`).
    pub id: String,
    /// Streams by ID.
    pub streams: BTreeMap<u16, StreamState>,
    /// Armed events.
    pub events: Option<EventsDescriptor>,
    /// Active signals.
    pub signals: SignalsDescriptor,
    /// Traffic counters.
    pub stats: TerminationStats,
    /// When it was added.
    pub created: Instant,
}

/// A context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The ContextID the MG chose: never 0 and never the choose/all values 0xFFFFFFFE/F.
    pub id: u32,
    /// Terminations by name.
    pub terminations: BTreeMap<String, Termination>,
    /// Topology, priority, emergency.
    pub properties: ContextProperties,
}

type CmdResult = Result<Vec<CommandReply>, ErrorDescriptor>;

/// Streams one termination may hold (an MSRP, BFCP or T.38 termination uses one).
const MAX_STREAMS_PER_TERMINATION: usize = 8;

fn e(code: u16, text: &str) -> ErrorDescriptor {
    ErrorDescriptor::new(code, text)
}

fn proc_err(p: ProcError) -> ErrorDescriptor {
    ErrorDescriptor::new(p.code, p.reason)
}

/// The media gateway's state.
pub struct Mg {
    cfg: MgConfig,
    realms: Realms,
    fingerprint: String,
    contexts: BTreeMap<u32, Context>,
    /// Termination name → context.
    where_is: HashMap<String, u32>,
    next_context: u32,
    next_termination: u32,
}

impl Mg {
    /// An empty MG with its realms and its certificate fingerprint (`SHA-256 AB:...`).
    pub fn new(cfg: MgConfig, realms: Realms, fingerprint: String) -> Self {
        Mg {
            cfg,
            realms,
            fingerprint,
            contexts: BTreeMap::new(),
            where_is: HashMap::new(),
            next_context: 1,
            next_termination: 1,
        }
    }

    /// Every context, by ContextID.
    pub fn contexts(&self) -> &BTreeMap<u32, Context> {
        &self.contexts
    }

    /// Realms (for port accounting).
    pub fn realms(&self) -> &Realms {
        &self.realms
    }

    /// Update a termination's counters (from data-plane statistics).
    pub fn update_stats(&mut self, termination: &str, stats: TerminationStats) {
        let Some(c) = self.where_is.get(termination) else {
            return;
        };
        if let Some(t) = self
            .contexts
            .get_mut(c)
            .and_then(|c| c.terminations.get_mut(termination))
        {
            t.stats = stats;
        }
    }

    /// Report an event observed on a termination (e.g. `tcp/ef` from the data plane). Returns
    /// the Notify action to send to the MGC if the MGC armed that event (H.248.1 §7.2.7).
    pub fn observe(
        &self,
        termination: &str,
        event: &str,
        parameters: Vec<PropertyParm>,
        timestamp: Option<String>,
    ) -> Option<ActionRequest> {
        let ctx = *self.where_is.get(termination)?;
        let t = self.contexts.get(&ctx)?.terminations.get(termination)?;
        let ev = t.events.as_ref()?;
        let request_id = ev.request_id?;
        let (pkg, _) = event.split_once('/')?;
        let armed = ev.events.iter().find(|r| {
            r.name.eq_ignore_ascii_case(event)
                || r.name
                    .split_once('/')
                    .is_some_and(|(p, i)| i == "*" && p.eq_ignore_ascii_case(pkg))
        })?;
        Some(ActionRequest {
            context: ContextId::Id(ctx),
            properties: ContextProperties::default(),
            commands: vec![CommandRequest {
                optional: false,
                wildcard_reply: false,
                command: Command::Notify(NotifyRequest {
                    termination: TerminationId(termination.to_owned()),
                    observed_events: ObservedEventsDescriptor {
                        request_id,
                        events: vec![ObservedEvent {
                            timestamp,
                            name: event.to_owned(),
                            stream: armed.stream,
                            parameters,
                        }],
                    },
                    error: None,
                }),
            }],
        })
    }

    /// Execute a transaction request.
    pub fn execute(
        &mut self,
        now: Instant,
        req: &TransactionRequest,
    ) -> (ReplyResult, Vec<LegChange>) {
        let mut changes = Vec::new();
        let replies = req
            .actions
            .iter()
            .map(|a| self.action(now, a, &mut changes))
            .collect();
        (ReplyResult::Actions(replies), changes)
    }

    fn action(
        &mut self,
        now: Instant,
        a: &ActionRequest,
        changes: &mut Vec<LegChange>,
    ) -> ActionReply {
        let mut reply = ActionReply {
            context: a.context,
            properties: ContextProperties::default(),
            replies: Vec::new(),
            error: None,
        };
        let ctx = match a.context {
            ContextId::Choose => {
                if self.contexts.len() >= self.cfg.max_contexts {
                    reply.error = Some(e(510, "no context available"));
                    return reply;
                }
                let id = self.alloc_context();
                self.contexts.insert(
                    id,
                    Context {
                        id,
                        terminations: BTreeMap::new(),
                        properties: ContextProperties::default(),
                    },
                );
                reply.context = ContextId::Id(id);
                Some(id)
            }
            ContextId::Id(id) => {
                if !self.contexts.contains_key(&id) {
                    reply.error = Some(e(411, "unknown context"));
                    return reply;
                }
                Some(id)
            }
            ContextId::Null | ContextId::All => None,
        };
        if let Some(id) = ctx {
            if let Some(c) = self.contexts.get_mut(&id) {
                if !a.properties.topology.is_empty() {
                    c.properties.topology.clone_from(&a.properties.topology);
                }
                if a.properties.priority.is_some() {
                    c.properties.priority = a.properties.priority;
                }
                if a.properties.emergency.is_some() {
                    c.properties.emergency = a.properties.emergency;
                }
            }
        } else if !a.properties.is_empty() {
            reply.error = Some(e(421, "context properties need a context"));
            return reply;
        }
        for c in &a.commands {
            match self.command(now, a.context, ctx, &c.command, changes) {
                Ok(mut r) => reply.replies.append(&mut r),
                Err(err) if c.optional => {
                    // H.248.1 §8.2.1: an optional command's failure does not stop the action.
                    let r = AmmsReply {
                        termination: c.command.termination().clone(),
                        audit: TerminationAudit {
                            error: Some(err),
                            ..TerminationAudit::default()
                        },
                    };
                    reply.replies.push(reply_kind(&c.command, r));
                }
                Err(err) => {
                    reply.error = Some(err);
                    break;
                }
            }
        }
        if let Some(id) = ctx {
            if self
                .contexts
                .get(&id)
                .is_some_and(|c| c.terminations.is_empty())
            {
                // §6.1.1: an empty context ceases to exist.
                self.contexts.remove(&id);
                if a.context == ContextId::Choose && reply.replies.is_empty() {
                    reply.context = ContextId::Choose;
                }
            }
        }
        reply
    }

    fn alloc_context(&mut self) -> u32 {
        loop {
            let id = self.next_context;
            self.next_context = self.next_context.checked_add(1).unwrap_or(1).max(1);
            // Context IDs 0 and 0xFFFFFFFE/F are reserved (null/choose/all in binary).
            if id != 0 && id < 0xFFFF_FFFE && !self.contexts.contains_key(&id) {
                return id;
            }
        }
    }

    fn command(
        &mut self,
        now: Instant,
        ctx_id: ContextId,
        ctx: Option<u32>,
        cmd: &Command,
        changes: &mut Vec<LegChange>,
    ) -> CmdResult {
        match cmd {
            Command::Add(r) => {
                let ctx = ctx.ok_or_else(|| e(421, "Add needs a context"))?;
                let r = self.add(now, ctx, r, changes)?;
                Ok(vec![CommandReply::Add(r)])
            }
            Command::Move(r) => {
                let ctx = ctx.ok_or_else(|| e(421, "Move needs a context"))?;
                let r = self.move_(ctx, r, changes)?;
                Ok(vec![CommandReply::Move(r)])
            }
            Command::Modify(r) => {
                if r.termination.is_root() {
                    check_root_descriptors(r)?;
                    return Ok(vec![CommandReply::Modify(AmmsReply {
                        termination: r.termination.clone(),
                        audit: TerminationAudit::default(),
                    })]);
                }
                let ctx = ctx.ok_or_else(|| e(421, "Modify needs a context"))?;
                if ctx_id == ContextId::Choose {
                    return Err(e(421, "Modify in a new context"));
                }
                let names = self.matching(ctx, &r.termination)?;
                let mut out = Vec::new();
                for n in names {
                    let audit = self.apply(ctx, &n, r, false, changes)?;
                    out.push(CommandReply::Modify(AmmsReply {
                        termination: TerminationId(n),
                        audit,
                    }));
                }
                Ok(out)
            }
            Command::Subtract(r) => self.subtract(now, ctx_id, ctx, r, changes),
            Command::AuditValue(r) | Command::AuditCapabilities(r) => {
                let cap = matches!(cmd, Command::AuditCapabilities(_));
                self.audit(now, ctx, r, cap)
            }
            Command::Notify(_) => Err(e(421, "Notify is sent by the MG, not to it")),
            Command::ServiceChange(_) => Err(e(501, "MGC-originated ServiceChange")),
        }
    }

    /// Names of the terminations `tid` selects in context `ctx`.
    fn matching(&self, ctx: u32, tid: &TerminationId) -> Result<Vec<String>, ErrorDescriptor> {
        let c = self
            .contexts
            .get(&ctx)
            .ok_or_else(|| e(411, "unknown context"))?;
        if tid.is_wildcard() {
            let names: Vec<String> = c
                .terminations
                .keys()
                .filter(|n| wildcard_match(tid.as_str(), n))
                .cloned()
                .collect();
            if names.is_empty() {
                return Err(e(431, "no termination matched the wildcard"));
            }
            return Ok(names);
        }
        if tid.is_choose() {
            return Err(e(421, "$ is only valid in Add"));
        }
        if c.terminations.contains_key(tid.as_str()) {
            Ok(vec![tid.0.clone()])
        } else if self.where_is.contains_key(tid.as_str()) {
            Err(e(435, "termination is not in this context"))
        } else {
            Err(e(430, "unknown termination"))
        }
    }

    fn add(
        &mut self,
        now: Instant,
        ctx: u32,
        r: &AmmRequest,
        changes: &mut Vec<LegChange>,
    ) -> Result<AmmsReply, ErrorDescriptor> {
        let tid = &r.termination;
        if tid.is_root() || tid.is_wildcard() {
            return Err(e(421, "Add of ROOT or a wildcard"));
        }
        let count = self.contexts.get(&ctx).map_or(0, |c| c.terminations.len());
        if count >= self.cfg.max_terminations_per_context {
            return Err(e(434, "too many terminations in context"));
        }
        // `limits.max_terminations`: every termination of the MG is in `where_is`.
        if self.where_is.len() >= self.cfg.max_terminations {
            return Err(e(510, "insufficient resources: termination limit reached"));
        }
        let name = if tid.is_choose() {
            let prefix = match tid.as_str().split_once('$') {
                Some((p, _)) if !p.is_empty() => p.trim_end_matches('/').to_owned(),
                _ => self.cfg.termination_prefix.clone(),
            };
            // The name chosen ("prefix/n", n up to 10 digits) must itself be a valid ID.
            if prefix.len() + 11 > crate::h248::parse::TERMINATION_ID_MAX {
                return Err(e(410, "termination ID prefix too long for a chosen name"));
            }
            loop {
                let n = format!("{prefix}/{}", self.next_termination);
                self.next_termination = self.next_termination.wrapping_add(1).max(1);
                if !self.where_is.contains_key(&n) {
                    break n;
                }
            }
        } else if self.where_is.contains_key(tid.as_str()) {
            return Err(e(433, "termination is already in a context"));
        } else {
            // Only ephemeral terminations exist here, and they are created with `$`.
            return Err(e(430, "unknown termination"));
        };
        let t = Termination {
            id: name.clone(),
            streams: BTreeMap::new(),
            events: None,
            signals: SignalsDescriptor::default(),
            stats: TerminationStats::default(),
            created: now,
        };
        if let Some(c) = self.contexts.get_mut(&ctx) {
            c.terminations.insert(name.clone(), t);
        }
        self.where_is.insert(name.clone(), ctx);
        match self.apply(ctx, &name, r, true, changes) {
            Ok(audit) => Ok(AmmsReply {
                termination: TerminationId(name),
                audit,
            }),
            Err(err) => {
                // Undo the half-made termination.
                self.remove_termination(ctx, &name, None);
                Err(err)
            }
        }
    }

    fn move_(
        &mut self,
        ctx: u32,
        r: &AmmRequest,
        changes: &mut Vec<LegChange>,
    ) -> Result<AmmsReply, ErrorDescriptor> {
        let name = r.termination.as_str();
        if r.termination.is_wildcard() || r.termination.is_choose() || r.termination.is_root() {
            return Err(e(421, "Move needs a specific termination"));
        }
        let from = *self
            .where_is
            .get(name)
            .ok_or_else(|| e(430, "unknown termination"))?;
        if from == ctx {
            return Err(e(421, "Move into the same context"));
        }
        let count = self.contexts.get(&ctx).map_or(0, |c| c.terminations.len());
        if count >= self.cfg.max_terminations_per_context {
            return Err(e(434, "too many terminations in context"));
        }
        let t = self
            .contexts
            .get_mut(&from)
            .and_then(|c| c.terminations.remove(name))
            .ok_or_else(|| e(500, "termination index inconsistent"))?;
        if self
            .contexts
            .get(&from)
            .is_some_and(|c| c.terminations.is_empty())
        {
            self.contexts.remove(&from);
        }
        for (sid, s) in &t.streams {
            if let Some(spec) = &s.leg {
                changes.push(LegChange::Update {
                    context: ctx,
                    termination: name.to_owned(),
                    stream: *sid,
                    spec: spec.clone(),
                });
            }
        }
        if let Some(c) = self.contexts.get_mut(&ctx) {
            c.terminations.insert(name.to_owned(), t);
        }
        self.where_is.insert(name.to_owned(), ctx);
        let audit = self.apply(ctx, name, r, false, changes)?;
        Ok(AmmsReply {
            termination: r.termination.clone(),
            audit,
        })
    }

    /// Apply the descriptors of Add/Modify/Move to termination `name` in `ctx`.
    fn apply(
        &mut self,
        ctx: u32,
        name: &str,
        r: &AmmRequest,
        is_add: bool,
        changes: &mut Vec<LegChange>,
    ) -> Result<TerminationAudit, ErrorDescriptor> {
        if r.digit_map.is_some() {
            return Err(e(501, "digit maps"));
        }
        if let Some(ev) = &r.events {
            for x in &ev.events {
                packages::lookup(&x.name, ItemKind::Event)
                    .map_err(|n| e(n.code(ItemKind::Event), "event refused"))?;
            }
        }
        if let Some(sg) = &r.signals {
            for x in &sg.signals {
                packages::lookup(&x.name, ItemKind::Signal)
                    .map_err(|n| e(n.code(ItemKind::Signal), "signal refused"))?;
            }
        }
        if let Some(st) = &r.statistics {
            for x in st {
                packages::lookup(&x.name, ItemKind::Statistic)
                    .map_err(|n| e(n.code(ItemKind::Statistic), "statistic refused"))?;
            }
        }
        let mut reply_media = MediaDescriptor::default();
        let mut new_changes = Vec::new();
        if let Some(m) = &r.media {
            if let Some(ts) = &m.termination_state {
                for p in &ts.properties {
                    let v = p.single().unwrap_or("");
                    packages::check_property(&p.name, v)
                        .map_err(|n| e(n.code(ItemKind::Property), "property refused"))?;
                }
            }
            let t = self
                .contexts
                .get(&ctx)
                .and_then(|c| c.terminations.get(name))
                .ok_or_else(|| e(500, "termination index inconsistent"))?;
            // Work on a copy so that a failure leaves the termination unchanged.
            let mut streams = t.streams.clone();
            for s in &m.streams {
                let sid = s.id.unwrap_or(1);
                // Each stream is state kept per termination (and possibly a data-plane leg):
                // its count is bounded so one Media descriptor cannot grow it without limit.
                // H.248.8: 510 insufficient resources.
                if !streams.contains_key(&sid) && streams.len() >= MAX_STREAMS_PER_TERMINATION {
                    return Err(e(510, "too many streams on termination"));
                }
                let cur = streams.entry(sid).or_insert_with(|| StreamState {
                    mode: StreamMode::SendRecv,
                    properties: Vec::new(),
                    local: None,
                    remote: None,
                    leg: None,
                });
                let mut local_is_ours = cur.leg.is_some();
                if let Some(lc) = &s.local_control {
                    if let Some(mode) = lc.mode {
                        cur.mode = mode;
                    }
                    for p in &lc.properties {
                        cur.properties
                            .retain(|q| !q.name.eq_ignore_ascii_case(&p.name));
                        cur.properties.push(p.clone());
                    }
                }
                if let Some(l) = &s.local {
                    cur.local = Some(l.clone());
                    local_is_ours = false;
                }
                if let Some(rm) = &s.remote {
                    cur.remote = Some(rm.clone());
                }
                if cur.local.is_none() && cur.remote.is_none() {
                    // Only properties so far: check them now, derive the leg later.
                    for p in &cur.properties {
                        let v = p.single().unwrap_or("");
                        packages::check_property(&p.name, v)
                            .map_err(|n| e(n.code(ItemKind::Property), "property refused"))?;
                    }
                    continue;
                }
                let out = derive_leg(
                    &LegInput {
                        local: cur.local.as_deref(),
                        remote: cur.remote.as_deref(),
                        properties: &cur.properties,
                        mode: cur.mode,
                        previous: cur.leg.as_ref(),
                        local_is_ours,
                    },
                    &mut self.realms,
                    &self.fingerprint,
                );
                let out = match out {
                    Ok(o) => o,
                    Err(p) => {
                        release_new(&mut self.realms, &new_changes);
                        return Err(proc_err(p));
                    }
                };
                // The worker cannot move a leg in place: a new local address or transport
                // needs a new listener/connection, which it refuses (worker `update_leg`),
                // so answering OK would leave the MGC pointing at an address nobody
                // serves. 501 (Not Implemented, H.248.1 Annex D) tells the MGC to Subtract
                // and Add instead; the request itself is well formed, so not 449.
                if let Some(old) = &cur.leg {
                    if old.local != out.spec.local || old.transport != out.spec.transport {
                        if old.local != out.spec.local {
                            self.realms.release(&out.spec.realm, out.spec.local.port());
                        }
                        release_new(&mut self.realms, &new_changes);
                        return Err(e(
                            501,
                            "changing a live leg's local address or transport is not supported",
                        ));
                    }
                }
                let change = if cur.leg.is_some() {
                    LegChange::Update {
                        context: ctx,
                        termination: name.to_owned(),
                        stream: sid,
                        spec: out.spec.clone(),
                    }
                } else {
                    LegChange::Install {
                        context: ctx,
                        termination: name.to_owned(),
                        stream: sid,
                        spec: out.spec.clone(),
                    }
                };
                if let Some(old) = &cur.leg {
                    if old.realm != out.spec.realm {
                        self.realms.release(&old.realm, old.local.port());
                    }
                }
                new_changes.push(change);
                cur.leg = Some(out.spec);
                cur.local = Some(out.local_sdp.clone());
                if s.local.is_some() || s.remote.is_some() || is_add {
                    reply_media.streams.push(StreamDescriptor {
                        id: s.id,
                        local: Some(out.local_sdp),
                        ..StreamDescriptor::default()
                    });
                }
            }
            if let Some(t) = self
                .contexts
                .get_mut(&ctx)
                .and_then(|c| c.terminations.get_mut(name))
            {
                t.streams = streams;
            }
        }
        let t = self
            .contexts
            .get_mut(&ctx)
            .and_then(|c| c.terminations.get_mut(name))
            .ok_or_else(|| e(500, "termination index inconsistent"))?;
        if let Some(ev) = &r.events {
            t.events = Some(ev.clone());
        }
        if let Some(sg) = &r.signals {
            t.signals = sg.clone();
            for s in &sg.signals {
                new_changes.push(LegChange::Signal {
                    context: ctx,
                    termination: name.to_owned(),
                    name: s.name.clone(),
                });
            }
        }
        changes.append(&mut new_changes);
        let mut audit = TerminationAudit::default();
        if !reply_media.streams.is_empty() {
            audit.media = Some(reply_media);
        }
        if let Some(a) = &r.audit {
            let t = t.clone();
            fill_audit(&mut audit, &t, &a.items, None);
        }
        Ok(audit)
    }

    fn remove_termination(
        &mut self,
        ctx: u32,
        name: &str,
        changes: Option<&mut Vec<LegChange>>,
    ) -> Option<Termination> {
        let t = self.contexts.get_mut(&ctx)?.terminations.remove(name)?;
        self.where_is.remove(name);
        let mut rel = Vec::new();
        for (sid, s) in &t.streams {
            if let Some(spec) = &s.leg {
                self.realms.release(&spec.realm, spec.local.port());
                rel.push(LegChange::Release {
                    context: ctx,
                    termination: name.to_owned(),
                    stream: *sid,
                    spec: spec.clone(),
                });
            }
        }
        if let Some(c) = changes {
            c.append(&mut rel);
        }
        Some(t)
    }

    fn subtract(
        &mut self,
        now: Instant,
        ctx_id: ContextId,
        ctx: Option<u32>,
        r: &SubtractRequest,
        changes: &mut Vec<LegChange>,
    ) -> CmdResult {
        let targets: Vec<(u32, String)> = match (ctx_id, ctx) {
            (ContextId::All, _) => {
                // `C=*{S=*}`: clear every context (typical MGC reset).
                if !r.termination.is_wildcard() {
                    return Err(e(421, "Subtract in all contexts needs a wildcard"));
                }
                self.contexts
                    .iter()
                    .flat_map(|(id, c)| c.terminations.keys().map(|n| (*id, n.clone())))
                    .filter(|(_, n)| wildcard_match(r.termination.as_str(), n))
                    .collect()
            }
            (ContextId::Choose, _) => return Err(e(421, "Subtract in a new context")),
            (_, Some(id)) => self
                .matching(id, &r.termination)?
                .into_iter()
                .map(|n| (id, n))
                .collect(),
            (_, None) => return Err(e(421, "Subtract needs a context")),
        };
        if targets.is_empty() {
            return Err(e(431, "no termination matched the wildcard"));
        }
        let mut out = Vec::new();
        for (c, n) in targets {
            let Some(t) = self.remove_termination(c, &n, Some(changes)) else {
                continue;
            };
            if self
                .contexts
                .get(&c)
                .is_some_and(|x| x.terminations.is_empty())
            {
                self.contexts.remove(&c);
            }
            let mut audit = TerminationAudit::default();
            match &r.audit {
                // §7.2.3: with no Audit descriptor, Subtract returns the statistics.
                None => audit.statistics = Some(statistics(&t, now)),
                Some(a) => fill_audit(&mut audit, &t, &a.items, Some(now)),
            }
            out.push(CommandReply::Subtract(AmmsReply {
                termination: TerminationId(n),
                audit,
            }));
        }
        Ok(out)
    }

    fn audit(&self, now: Instant, ctx: Option<u32>, r: &AuditRequest, cap: bool) -> CmdResult {
        let wrap = |termination: TerminationId, audit| {
            let a = AmmsReply { termination, audit };
            if cap {
                CommandReply::AuditCapabilities(a)
            } else {
                CommandReply::AuditValue(a)
            }
        };
        if r.termination.is_root() {
            let mut audit = TerminationAudit::default();
            if r.audit.items.contains(&AuditItem::Packages) || cap {
                audit.packages = Some(package_list());
            }
            return Ok(vec![wrap(r.termination.clone(), audit)]);
        }
        let names: Vec<(u32, String)> = match ctx {
            Some(c) => self
                .matching(c, &r.termination)?
                .into_iter()
                .map(|n| (c, n))
                .collect(),
            None => {
                // Null or all contexts: look the termination(s) up wherever they are.
                let v: Vec<(u32, String)> = self
                    .where_is
                    .iter()
                    .filter(|(n, _)| wildcard_match(r.termination.as_str(), n))
                    .map(|(n, c)| (*c, n.clone()))
                    .collect();
                if v.is_empty() {
                    return Err(if r.termination.is_wildcard() {
                        e(431, "no termination matched the wildcard")
                    } else {
                        e(430, "unknown termination")
                    });
                }
                v
            }
        };
        let mut out = Vec::new();
        for (c, n) in names {
            let Some(t) = self.contexts.get(&c).and_then(|x| x.terminations.get(&n)) else {
                continue;
            };
            let mut audit = TerminationAudit::default();
            if cap {
                audit.packages = Some(package_list());
            } else {
                fill_audit(&mut audit, t, &r.audit.items, Some(now));
            }
            out.push(wrap(TerminationId(n), audit));
        }
        Ok(out)
    }
}

fn reply_kind(cmd: &Command, r: AmmsReply) -> CommandReply {
    match cmd {
        Command::Add(_) => CommandReply::Add(r),
        Command::Modify(_) => CommandReply::Modify(r),
        Command::Move(_) => CommandReply::Move(r),
        Command::Subtract(_) => CommandReply::Subtract(r),
        Command::AuditValue(_) => CommandReply::AuditValue(r),
        Command::AuditCapabilities(_) => CommandReply::AuditCapabilities(r),
        Command::Notify(_) => CommandReply::Notify(NotifyReply {
            termination: r.termination,
            error: r.audit.error,
        }),
        Command::ServiceChange(_) => CommandReply::ServiceChange(ServiceChangeReply {
            termination: r.termination,
            result: match r.audit.error {
                Some(e) => ServiceChangeResult::Error(e),
                None => ServiceChangeResult::Accepted,
            },
        }),
    }
}

fn release_new(realms: &mut Realms, changes: &[LegChange]) {
    for c in changes {
        if let LegChange::Install { spec, .. } = c {
            realms.release(&spec.realm, spec.local.port());
        }
    }
}

fn check_root_descriptors(r: &AmmRequest) -> Result<(), ErrorDescriptor> {
    if r.media.is_some() {
        return Err(e(421, "ROOT has no media"));
    }
    Ok(())
}

/// `*` matches any run of characters; everything else literally.
///
/// Two-pointer glob with a single backtrack point (the last `*` seen): on a mismatch only the
/// last star's span grows, so the cost is at most O(pattern * name) bytes compared, never
/// exponential. A recursive split on every star was exponential in the number of stars and let
/// one Subtract stall the control thread (issue 12 finding 2). Bytes are compared, which is exact
/// for UTF-8 because `*` is ASCII and cannot occur inside a multi-byte sequence.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Position after the last star in the pattern and the name index it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            pi += 1;
            star = Some((pi, ni));
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            // Let the last star absorb one more byte and retry the rest from there.
            pi = sp;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn package_list() -> Vec<PackagesItem> {
    packages::PACKAGES
        .iter()
        .map(|p| PackagesItem {
            name: p.name.to_owned(),
            version: p.version,
        })
        .collect()
}

fn statistics(t: &Termination, now: Instant) -> Vec<StatisticsParameter> {
    let dur: Duration = now.saturating_duration_since(t.created);
    vec![
        StatisticsParameter {
            name: "nt/os".into(),
            values: vec![t.stats.octets_sent.to_string()],
        },
        StatisticsParameter {
            name: "nt/or".into(),
            values: vec![t.stats.octets_received.to_string()],
        },
        StatisticsParameter {
            name: "nt/dur".into(),
            values: vec![dur.as_millis().to_string()],
        },
    ]
}

fn fill_audit(
    a: &mut TerminationAudit,
    t: &Termination,
    items: &[AuditItem],
    now: Option<Instant>,
) {
    for i in items {
        match i {
            AuditItem::Media => {
                a.media = Some(MediaDescriptor {
                    termination_state: None,
                    streams: t
                        .streams
                        .iter()
                        .map(|(id, s)| StreamDescriptor {
                            id: Some(*id),
                            local_control: Some(LocalControlDescriptor {
                                mode: Some(s.mode),
                                reserve_value: None,
                                reserve_group: None,
                                properties: s.properties.clone(),
                            }),
                            local: s.local.clone(),
                            remote: s.remote.clone(),
                            statistics: None,
                        })
                        .collect(),
                });
            }
            AuditItem::Events => a.events = Some(t.events.clone().unwrap_or_default()),
            AuditItem::Signals => a.signals = Some(t.signals.clone()),
            AuditItem::Statistics => {
                a.statistics = Some(statistics(t, now.unwrap_or(t.created)));
            }
            AuditItem::Packages => a.packages = Some(package_list()),
            AuditItem::DigitMap | AuditItem::ObservedEvents | AuditItem::EventBuffer => {}
        }
    }
}

#[cfg(test)]
mod tests;
