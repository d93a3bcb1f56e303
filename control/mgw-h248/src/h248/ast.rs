//! Typed AST of an H.248.1 text message (Annex B ABNF; RFC 3525 for version 1).
//!
//! The AST owns its strings: it is built on the control thread, never on the fast path. Each
//! descriptor that may appear at most once in its parent is an `Option`, so a command reads like
//! the ABNF rule it came from. Constructs the codec does not implement (Modem, Mux, signal lists,
//! embedded events, v3 individual audit descriptors) are rejected by the parser with error 501.

use std::net::IpAddr;

/// One H.248 message: header plus transactions, or a message-level error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Protocol version from `MEGACO/<v>` (1..=3).
    pub version: u8,
    /// The sender's message identifier (`mId`).
    pub mid: Mid,
    /// Transactions or a message-level error descriptor.
    pub body: MessageBody,
}

/// `mId` (H.248.1 Annex B): address, domain name or device name of the sender.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mid {
    /// `[ip]:port` — `domainAddress [":" portNumber]`.
    Ip {
        /// IPv4 or IPv6 address.
        addr: IpAddr,
        /// Optional port.
        port: Option<u16>,
    },
    /// `<name>:port` — `domainName [":" portNumber]`.
    Domain {
        /// The name between angle brackets.
        name: String,
        /// Optional port.
        port: Option<u16>,
    },
    /// `deviceName` (a pathNAME).
    Device(String),
}

/// `messageBody = errorDescriptor / transactionList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageBody {
    /// A message-level error (e.g. the whole message failed to parse).
    Error(ErrorDescriptor),
    /// One or more transactions.
    Transactions(Vec<Transaction>),
}

/// One transaction of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transaction {
    /// `Transaction = id { actions }`.
    Request(TransactionRequest),
    /// `Reply = id { ... }`.
    Reply(TransactionReply),
    /// `Pending = id { }`.
    Pending(u32),
    /// `TransactionResponseAck { id, id-id }`.
    ResponseAck(Vec<AckRange>),
    /// v3 `Segment = id / n [/ END]`: acknowledgement of a reply segment.
    SegmentReply(SegmentReply),
}

/// A transaction request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRequest {
    /// Transaction identifier (`UINT32`).
    pub id: u32,
    /// One or more action requests.
    pub actions: Vec<ActionRequest>,
}

/// A transaction reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionReply {
    /// Transaction identifier being answered.
    pub id: u32,
    /// v3 segmentation: `Reply = id/segment[/END]`.
    pub segment: Option<Segment>,
    /// `ImmAckRequired`: the receiver must send TransactionResponseAck at once.
    pub imm_ack_required: bool,
    /// Either a transaction-level error or the action replies.
    pub result: ReplyResult,
}

/// H.248.1 v3 §8.1.1 message segmentation of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Segment number, from 1.
    pub number: u16,
    /// `END`: this is the last segment.
    pub complete: bool,
}

/// v3 `segmentReply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentReply {
    /// Transaction identifier.
    pub id: u32,
    /// Segment acknowledged.
    pub segment: Segment,
}

/// The body of a transaction reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyResult {
    /// The whole transaction failed.
    Error(ErrorDescriptor),
    /// Per-context replies.
    Actions(Vec<ActionReply>),
}

/// `transactionAck = transactionID / (transactionID "-" transactionID)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRange {
    /// First acknowledged transaction.
    pub first: u32,
    /// Last acknowledged transaction (equal to `first` for a single ID).
    pub last: u32,
}

/// `ContextID = UINT32 / "*" / "-" / "$"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextId {
    /// `-`: the null context (commands outside any context, e.g. ServiceChange on ROOT).
    Null,
    /// `$`: the MG chooses a new context.
    Choose,
    /// `*`: all contexts.
    All,
    /// A specific context.
    Id(u32),
}

/// `actionRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRequest {
    /// Target context.
    pub context: ContextId,
    /// Context properties (topology, priority, emergency).
    pub properties: ContextProperties,
    /// Commands, in order.
    pub commands: Vec<CommandRequest>,
}

/// `contextProperties` (the subset mgwd implements).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextProperties {
    /// `Topology { ... }`.
    pub topology: Vec<TopologyTriple>,
    /// `Priority = n`.
    pub priority: Option<u16>,
    /// `Emergency` (Some(true)) or `EmergencyOff` (Some(false)).
    pub emergency: Option<bool>,
}

impl ContextProperties {
    /// True if no property is present.
    pub fn is_empty(&self) -> bool {
        self.topology.is_empty() && self.priority.is_none() && self.emergency.is_none()
    }
}

/// `topologyTriple`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyTriple {
    /// From termination.
    pub from: TerminationId,
    /// To termination.
    pub to: TerminationId,
    /// Direction of the flow.
    pub direction: TopologyDirection,
}

/// `topologyDirection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyDirection {
    /// `Bothway`.
    Bothway,
    /// `Isolate`.
    Isolate,
    /// `Oneway`.
    Oneway,
}

/// A command with its `O-` (optional) and `W-` (wildcarded response) prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    /// `O-`: failure of this command does not abort the rest.
    pub optional: bool,
    /// `W-`: a wildcard command may be answered with a single wildcarded reply.
    pub wildcard_reply: bool,
    /// The command.
    pub command: Command,
}

/// `commandRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `Add`.
    Add(AmmRequest),
    /// `Modify`.
    Modify(AmmRequest),
    /// `Move`.
    Move(AmmRequest),
    /// `Subtract`.
    Subtract(SubtractRequest),
    /// `AuditValue`.
    AuditValue(AuditRequest),
    /// `AuditCapability`.
    AuditCapabilities(AuditRequest),
    /// `Notify`.
    Notify(NotifyRequest),
    /// `ServiceChange`.
    ServiceChange(ServiceChangeRequest),
}

impl Command {
    /// The termination the command names.
    pub fn termination(&self) -> &TerminationId {
        match self {
            Command::Add(r) | Command::Modify(r) | Command::Move(r) => &r.termination,
            Command::Subtract(r) => &r.termination,
            Command::AuditValue(r) | Command::AuditCapabilities(r) => &r.termination,
            Command::Notify(r) => &r.termination,
            Command::ServiceChange(r) => &r.termination,
        }
    }
}

/// A termination identifier: `ROOT`, `$`, `*` or a pathNAME that may hold `$`/`*` wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TerminationId(pub String);

impl TerminationId {
    /// The ROOT termination.
    pub fn root() -> Self {
        TerminationId("ROOT".into())
    }
    /// `$`.
    pub fn choose() -> Self {
        TerminationId("$".into())
    }
    /// True for ROOT (case-insensitive).
    pub fn is_root(&self) -> bool {
        self.0.eq_ignore_ascii_case("ROOT")
    }
    /// True if the MG must choose (all or part of) the name.
    pub fn is_choose(&self) -> bool {
        self.0.contains('$')
    }
    /// True if the name is a wildcard matching several terminations.
    pub fn is_wildcard(&self) -> bool {
        self.0.contains('*')
    }
    /// The identifier text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Add, Modify and Move: `ammRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AmmRequest {
    /// Target termination.
    pub termination: TerminationId,
    /// `Media { ... }`.
    pub media: Option<MediaDescriptor>,
    /// `Events = id { ... }`.
    pub events: Option<EventsDescriptor>,
    /// `Signals { ... }`.
    pub signals: Option<SignalsDescriptor>,
    /// `DigitMap = ...`.
    pub digit_map: Option<DigitMapDescriptor>,
    /// `Audit { ... }`: what to return in the reply.
    pub audit: Option<AuditDescriptor>,
    /// `Statistics { ... }` (v2+).
    pub statistics: Option<Vec<StatisticsParameter>>,
}

impl Default for TerminationId {
    fn default() -> Self {
        TerminationId::root()
    }
}

/// `subtractRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtractRequest {
    /// Target termination.
    pub termination: TerminationId,
    /// `Audit { ... }` — e.g. `Audit{Statistics}` to get statistics back.
    pub audit: Option<AuditDescriptor>,
}

/// `auditRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRequest {
    /// Target termination.
    pub termination: TerminationId,
    /// What to audit.
    pub audit: AuditDescriptor,
}

/// `notifyRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyRequest {
    /// Termination that observed the events.
    pub termination: TerminationId,
    /// The events.
    pub observed_events: ObservedEventsDescriptor,
    /// Optional error descriptor.
    pub error: Option<ErrorDescriptor>,
}

/// `serviceChangeRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceChangeRequest {
    /// Usually ROOT.
    pub termination: TerminationId,
    /// `Services { ... }`.
    pub parms: ServiceChangeParms,
}

/// `serviceChangeParm`s (request) and `servChgReplyParm`s (reply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceChangeParms {
    /// `Method`.
    pub method: Option<ServiceChangeMethod>,
    /// `Reason` (e.g. `"901 Cold Boot"`).
    pub reason: Option<String>,
    /// `Delay` in milliseconds.
    pub delay: Option<u32>,
    /// `ServiceChangeAddress`.
    pub address: Option<ServiceChangeAddress>,
    /// `Profile = name/version`.
    pub profile: Option<String>,
    /// `Version`.
    pub version: Option<u8>,
    /// `MgcIdToTry`.
    pub mgc_id: Option<Mid>,
    /// Time stamp `yyyymmddThhmmssss`.
    pub timestamp: Option<String>,
}

impl ServiceChangeParms {
    /// The numeric part of `Reason`, if present and numeric.
    pub fn reason_code(&self) -> Option<u16> {
        let r = self.reason.as_deref()?;
        let digits: String = r
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }
}

/// `serviceChangeMethod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChangeMethod {
    /// `Failover`.
    Failover,
    /// `Forced`.
    Forced,
    /// `Graceful`.
    Graceful,
    /// `Restart`.
    Restart,
    /// `Disconnected`.
    Disconnected,
    /// `HandOff`.
    HandOff,
    /// An extension method (`X-...`).
    Extension(String),
}

/// `serviceChangeAddress = mId / portNumber`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChangeAddress {
    /// A full mId.
    Mid(Mid),
    /// Just a port.
    Port(u16),
}

/// `Media { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaDescriptor {
    /// `TerminationState { ... }`.
    pub termination_state: Option<TerminationStateDescriptor>,
    /// Streams. A stream with `id: None` stands for stream parameters written directly
    /// in the media descriptor (the single-stream shorthand).
    pub streams: Vec<StreamDescriptor>,
}

/// `Stream = id { ... }` or the single-stream shorthand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamDescriptor {
    /// Stream ID, or `None` for the shorthand.
    pub id: Option<u16>,
    /// `LocalControl { ... }`.
    pub local_control: Option<LocalControlDescriptor>,
    /// `Local { SDP }`: the MG's side.
    pub local: Option<String>,
    /// `Remote { SDP }`: the peer's side.
    pub remote: Option<String>,
    /// `Statistics { ... }`.
    pub statistics: Option<Vec<StatisticsParameter>>,
}

/// `LocalControl { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalControlDescriptor {
    /// `Mode`.
    pub mode: Option<StreamMode>,
    /// `ReservedValue = ON/OFF`.
    pub reserve_value: Option<bool>,
    /// `ReservedGroup = ON/OFF`.
    pub reserve_group: Option<bool>,
    /// Package properties.
    pub properties: Vec<PropertyParm>,
}

/// `streamModes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    /// `SendOnly`.
    SendOnly,
    /// `ReceiveOnly`.
    RecvOnly,
    /// `SendReceive`.
    SendRecv,
    /// `Inactive`.
    Inactive,
    /// `Loopback`.
    Loopback,
}

/// `TerminationState { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TerminationStateDescriptor {
    /// `ServiceStates`.
    pub service_state: Option<ServiceState>,
    /// `Buffer = LockStep / Off`: Some(true) for LockStep.
    pub event_buffer_control: Option<bool>,
    /// Package properties.
    pub properties: Vec<PropertyParm>,
}

/// `serviceStates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    /// `Test`.
    Test,
    /// `OutOfService`.
    OutOfService,
    /// `InService`.
    InService,
}

/// `propertyParm = pkgdName parmValue` (also used for event and signal parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyParm {
    /// `package/property` (or a bare parameter name for event/signal parameters).
    pub name: String,
    /// `=`, `>`, `<` or `#`.
    pub relation: Relation,
    /// The value.
    pub value: PropertyValue,
}

impl PropertyParm {
    /// `name = value`.
    pub fn eq(name: &str, value: &str) -> Self {
        PropertyParm {
            name: name.into(),
            relation: Relation::Equal,
            value: PropertyValue::Single(value.into()),
        }
    }
    /// The package part of `package/item` (empty if there is no `/`).
    pub fn package(&self) -> &str {
        self.name.split_once('/').map_or("", |(p, _)| p)
    }
    /// The item part of `package/item` (the whole name if there is no `/`).
    pub fn item(&self) -> &str {
        self.name.split_once('/').map_or(&self.name, |(_, i)| i)
    }
    /// The value if it is a single value.
    pub fn single(&self) -> Option<&str> {
        match &self.value {
            PropertyValue::Single(v) => Some(v),
            _ => None,
        }
    }
}

/// Relation of a property to its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// `=`.
    Equal,
    /// `>`.
    Greater,
    /// `<`.
    Less,
    /// `#` (not equal).
    NotEqual,
}

/// `alternativeValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyValue {
    /// `VALUE`.
    Single(String),
    /// `[a, b, c]`: one of.
    Alternatives(Vec<String>),
    /// `[a : b]`: a range.
    Range(String, String),
    /// `{a, b}`: all of (a sublist).
    Sublist(Vec<String>),
}

/// `Events = id { ... }`; a bare `Events` (no request ID) clears the events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsDescriptor {
    /// Request identifier, echoed in ObservedEvents.
    pub request_id: Option<u32>,
    /// Requested events.
    pub events: Vec<RequestedEvent>,
}

/// `requestedEvent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedEvent {
    /// `package/event`.
    pub name: String,
    /// `Stream = id`.
    pub stream: Option<u16>,
    /// `KeepActive`.
    pub keep_active: bool,
    /// Other event parameters.
    pub parameters: Vec<PropertyParm>,
}

/// `Signals { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignalsDescriptor {
    /// Signals to play (an empty list stops all signals).
    pub signals: Vec<SignalRequest>,
}

/// `signalRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalRequest {
    /// `package/signal`.
    pub name: String,
    /// `Stream = id`.
    pub stream: Option<u16>,
    /// `SignalType`.
    pub signal_type: Option<SignalType>,
    /// `Duration` in milliseconds.
    pub duration: Option<u32>,
    /// `NotifyCompletion { ... }`.
    pub notify_completion: Vec<NotifyReason>,
    /// `KeepActive`.
    pub keep_active: bool,
    /// Other signal parameters.
    pub parameters: Vec<PropertyParm>,
}

/// `signalType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalType {
    /// `OnOff`.
    OnOff,
    /// `TimeOut`.
    TimeOut,
    /// `Brief`.
    Brief,
}

/// `notificationReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyReason {
    /// `TimeOut`.
    TimeOut,
    /// `IntByEvent`.
    InterruptByEvent,
    /// `IntBySigDescr`.
    InterruptByNewSignalsDescr,
    /// `OtherReason`.
    OtherReason,
    /// `Iteration` (v2).
    Iteration,
}

/// `ObservedEvents = id { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedEventsDescriptor {
    /// Request ID from the Events descriptor that armed them.
    pub request_id: u32,
    /// Observed events.
    pub events: Vec<ObservedEvent>,
}

/// `observedEvent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedEvent {
    /// Time stamp `yyyymmddThhmmssss`.
    pub timestamp: Option<String>,
    /// `package/event`.
    pub name: String,
    /// `Stream = id`.
    pub stream: Option<u16>,
    /// Event parameters.
    pub parameters: Vec<PropertyParm>,
}

/// `statisticsParameter = pkgdName [EQUAL VALUE / "[" VALUE *("," VALUE) "]"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatisticsParameter {
    /// `package/statistic`.
    pub name: String,
    /// No value (a request), one value, or a v3 list.
    pub values: Vec<String>,
}

/// `Error = code { "text" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDescriptor {
    /// H.248.8 error code.
    pub code: u16,
    /// Optional explanatory text.
    pub text: Option<String>,
}

impl ErrorDescriptor {
    /// An error with code and text.
    pub fn new(code: u16, text: &str) -> Self {
        ErrorDescriptor {
            code,
            text: Some(text.into()),
        }
    }
}

/// `Audit { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditDescriptor {
    /// Items requested (empty = audit nothing, just check existence).
    pub items: Vec<AuditItem>,
}

/// `auditItem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditItem {
    /// `Media`.
    Media,
    /// `Events`.
    Events,
    /// `Signals`.
    Signals,
    /// `DigitMap`.
    DigitMap,
    /// `Statistics`.
    Statistics,
    /// `ObservedEvents`.
    ObservedEvents,
    /// `Packages`.
    Packages,
    /// `EventBuffer`.
    EventBuffer,
}

/// `DigitMap = name` / `DigitMap = name { value }` / `DigitMap = { value }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigitMapDescriptor {
    /// Name of the digit map.
    pub name: Option<String>,
    /// The digit map body, verbatim.
    pub value: Option<String>,
}

/// One action reply: `Context = id { replies [, error] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionReply {
    /// The context (the chosen one when the request said `$`).
    pub context: ContextId,
    /// Context properties returned (v3).
    pub properties: ContextProperties,
    /// Command replies, in request order.
    pub replies: Vec<CommandReply>,
    /// Error that stopped processing of this action.
    pub error: Option<ErrorDescriptor>,
}

/// `commandReplys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandReply {
    /// `Add = t { ... }`.
    Add(AmmsReply),
    /// `Modify = t { ... }`.
    Modify(AmmsReply),
    /// `Move = t { ... }`.
    Move(AmmsReply),
    /// `Subtract = t { ... }`.
    Subtract(AmmsReply),
    /// `AuditValue = t { ... }`.
    AuditValue(AmmsReply),
    /// `AuditCapability = t { ... }`.
    AuditCapabilities(AmmsReply),
    /// `Notify = t [{ error }]`.
    Notify(NotifyReply),
    /// `ServiceChange = t [{ ... }]`.
    ServiceChange(ServiceChangeReply),
}

/// Reply to Add/Modify/Move/Subtract/Audit: termination and what it returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AmmsReply {
    /// The termination (the chosen name when the request said `$`).
    pub termination: TerminationId,
    /// Returned descriptors (empty: no braces).
    pub audit: TerminationAudit,
}

/// `terminationAudit`: the descriptors a reply may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TerminationAudit {
    /// `Media`.
    pub media: Option<MediaDescriptor>,
    /// `Events`.
    pub events: Option<EventsDescriptor>,
    /// `Signals`.
    pub signals: Option<SignalsDescriptor>,
    /// `DigitMap`.
    pub digit_map: Option<DigitMapDescriptor>,
    /// `ObservedEvents`.
    pub observed_events: Option<ObservedEventsDescriptor>,
    /// `Statistics`.
    pub statistics: Option<Vec<StatisticsParameter>>,
    /// `Packages`.
    pub packages: Option<Vec<PackagesItem>>,
    /// `Error`.
    pub error: Option<ErrorDescriptor>,
}

impl TerminationAudit {
    /// True if nothing is returned.
    pub fn is_empty(&self) -> bool {
        self == &TerminationAudit::default()
    }
}

/// `packagesItem = NAME "-" UINT16`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagesItem {
    /// Package name.
    pub name: String,
    /// Package version.
    pub version: u16,
}

/// `notifyReply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyReply {
    /// The termination the Notify was about.
    pub termination: TerminationId,
    /// Error, if the Notify failed.
    pub error: Option<ErrorDescriptor>,
}

/// `serviceChangeReply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceChangeReply {
    /// Termination (usually ROOT).
    pub termination: TerminationId,
    /// Error, parameters, or nothing.
    pub result: ServiceChangeResult,
}

/// Body of a ServiceChange reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChangeResult {
    /// No braces: plain acceptance.
    Accepted,
    /// `Error = ...`.
    Error(ErrorDescriptor),
    /// `Services { ... }`.
    Parms(ServiceChangeParms),
}
