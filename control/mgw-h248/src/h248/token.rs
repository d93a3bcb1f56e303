//! H.248.1 Annex B tokens: every keyword with its long and short form.
//!
//! Tokens are case-insensitive (Annex B.2: "all tokens are case insensitive"). The parser
//! recognises either form; the emitter writes the long form in pretty mode and the short form in
//! compact mode.

macro_rules! tokens {
    ($( $(#[$m:meta])* $name:ident = $long:literal, $short:literal; )*) => {
        /// A keyword of the text encoding.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Tok { $( $(#[$m])* $name, )* }

        impl Tok {
            /// Every token, for lookup.
            pub const ALL: &'static [Tok] = &[ $( Tok::$name, )* ];
            /// Long form (`Add`).
            pub const fn long(self) -> &'static str { match self { $( Tok::$name => $long, )* } }
            /// Short form (`A`).
            pub const fn short(self) -> &'static str { match self { $( Tok::$name => $short, )* } }
        }
    };
}

tokens! {
    /// `Add`
    Add = "Add", "A";
    /// `Audit`
    Audit = "Audit", "AT";
    /// `AuditCapability`
    AuditCap = "AuditCapability", "AC";
    /// `AuditValue`
    AuditValue = "AuditValue", "AV";
    /// `Authentication`
    Auth = "Authentication", "AU";
    /// `Bothway`
    Bothway = "Bothway", "BW";
    /// `Brief`
    Brief = "Brief", "BR";
    /// `Buffer`
    Buffer = "Buffer", "BF";
    /// `Context`
    Ctx = "Context", "C";
    /// `ContextAudit`
    ContextAudit = "ContextAudit", "CA";
    /// `DigitMap`
    DigitMap = "DigitMap", "DM";
    /// `Disconnected`
    Disconnected = "Disconnected", "DC";
    /// `Delay`
    Delay = "Delay", "DL";
    /// `Duration`
    Duration = "Duration", "DR";
    /// `Embed`
    Embed = "Embed", "EM";
    /// `Emergency`
    Emergency = "Emergency", "EG";
    /// `EmergencyOff`
    EmergencyOff = "EmergencyOff", "EGO";
    /// `Error`
    Error = "Error", "ER";
    /// `EventBuffer`
    EventBuffer = "EventBuffer", "EB";
    /// `Events`
    Events = "Events", "E";
    /// `Failover`
    Failover = "Failover", "FL";
    /// `Forced`
    Forced = "Forced", "FO";
    /// `Graceful`
    Graceful = "Graceful", "GR";
    /// `HandOff`
    HandOff = "HandOff", "HO";
    /// `ImmAckRequired`
    ImmAckRequired = "ImmAckRequired", "IA";
    /// `Inactive`
    Inactive = "Inactive", "IN";
    /// `Isolate`
    Isolate = "Isolate", "IS";
    /// `InService`
    InSvc = "InService", "IV";
    /// `IntByEvent`
    IntByEvent = "IntByEvent", "IBE";
    /// `IntBySigDescr`
    IntBySigDescr = "IntBySigDescr", "IBS";
    /// `Iteration`
    Iteration = "Iteration", "IR";
    /// `KeepActive`
    KeepActive = "KeepActive", "KA";
    /// `Local`
    Local = "Local", "L";
    /// `LocalControl`
    LocalControl = "LocalControl", "O";
    /// `LockStep`
    LockStep = "LockStep", "SP";
    /// `Loopback`
    Loopback = "Loopback", "LB";
    /// `Media`
    Media = "Media", "M";
    /// `MEGACO`
    Megacop = "MEGACO", "!";
    /// `Method`
    Method = "Method", "MT";
    /// `MgcIdToTry`
    MgcId = "MgcIdToTry", "MG";
    /// `Mode`
    Mode = "Mode", "MO";
    /// `Modify`
    Modify = "Modify", "MF";
    /// `Modem`
    Modem = "Modem", "MD";
    /// `Move`
    Move = "Move", "MV";
    /// `Mux`
    Mux = "Mux", "MX";
    /// `Notify`
    Notify = "Notify", "N";
    /// `NotifyCompletion`
    NotifyCompletion = "NotifyCompletion", "NC";
    /// `ObservedEvents`
    ObservedEvents = "ObservedEvents", "OE";
    /// `Oneway`
    Oneway = "Oneway", "OW";
    /// `OnOff`
    OnOff = "OnOff", "OO";
    /// `OtherReason`
    OtherReason = "OtherReason", "OR";
    /// `OutOfService`
    OutOfSvc = "OutOfService", "OS";
    /// `Packages`
    Packages = "Packages", "PG";
    /// `Pending`
    Pending = "Pending", "PN";
    /// `Priority`
    Priority = "Priority", "PR";
    /// `Profile`
    Profile = "Profile", "PF";
    /// `Reason`
    Reason = "Reason", "RE";
    /// `ReceiveOnly`
    RecvOnly = "ReceiveOnly", "RC";
    /// `Reply`
    Reply = "Reply", "P";
    /// `Restart`
    Restart = "Restart", "RS";
    /// `Remote`
    Remote = "Remote", "R";
    /// `ReservedGroup`
    ReservedGroup = "ReservedGroup", "RG";
    /// `ReservedValue`
    ReservedValue = "ReservedValue", "RV";
    /// `TransactionResponseAck`
    ResponseAck = "TransactionResponseAck", "K";
    /// `Segment` (v3)
    Segment = "Segment", "SM";
    /// `SendOnly`
    SendOnly = "SendOnly", "SO";
    /// `SendReceive`
    SendRecv = "SendReceive", "SR";
    /// `Services`
    Services = "Services", "SV";
    /// `ServiceStates`
    ServiceStates = "ServiceStates", "SI";
    /// `ServiceChange`
    ServiceChange = "ServiceChange", "SC";
    /// `ServiceChangeAddress`
    ServiceChangeAddress = "ServiceChangeAddress", "AD";
    /// `SignalList`
    SignalList = "SignalList", "SL";
    /// `Signals`
    Signals = "Signals", "SG";
    /// `SignalType`
    SignalType = "SignalType", "SY";
    /// `Statistics`
    Stats = "Statistics", "SA";
    /// `Stream`
    Stream = "Stream", "ST";
    /// `Subtract`
    Subtract = "Subtract", "S";
    /// `TerminationState`
    TerminationState = "TerminationState", "TS";
    /// `Test`
    Test = "Test", "TE";
    /// `TimeOut`
    TimeOut = "TimeOut", "TO";
    /// `Topology`
    Topology = "Topology", "TP";
    /// `Transaction`
    Trans = "Transaction", "T";
    /// `Version`
    Version = "Version", "V";
}

impl Tok {
    /// True if `word` is this token in either form (case-insensitive).
    pub fn is(self, word: &[u8]) -> bool {
        word.eq_ignore_ascii_case(self.long().as_bytes())
            || word.eq_ignore_ascii_case(self.short().as_bytes())
    }

    /// The token `word` spells, if any.
    ///
    /// The word is upper-cased into a stack buffer and looked up in a table built once, so the
    /// cost does not grow with the number of tokens (this lookup dominated parsing when it was
    /// a linear scan).
    pub fn lookup(word: &[u8]) -> Option<Tok> {
        let mut buf = [0u8; 24];
        let up = buf.get_mut(..word.len())?;
        for (d, s) in up.iter_mut().zip(word) {
            *d = s.to_ascii_uppercase();
        }
        table().get(&*up).copied()
    }

    /// The form for the given style.
    pub const fn form(self, compact: bool) -> &'static str {
        if compact {
            self.short()
        } else {
            self.long()
        }
    }
}

/// FNV-1a: keys are short ASCII words from our own table, so a DoS-resistant hash is not
/// needed and SipHash showed in profiles.
#[derive(Default, Clone, Copy)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type Table = std::collections::HashMap<Vec<u8>, Tok, std::hash::BuildHasherDefault<Fnv>>;

/// Upper-cased long and short forms.
fn table() -> &'static Table {
    static TABLE: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut m = Table::default();
        for t in Tok::ALL {
            m.insert(t.long().to_ascii_uppercase().into_bytes(), *t);
            m.insert(t.short().to_ascii_uppercase().into_bytes(), *t);
        }
        m
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_short_forms_are_unique() {
        for (i, a) in Tok::ALL.iter().enumerate() {
            for b in &Tok::ALL[i + 1..] {
                assert!(!a.is(b.long().as_bytes()), "{a:?} vs {b:?}");
                assert!(!a.is(b.short().as_bytes()), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(Tok::lookup(b"servicechange"), Some(Tok::ServiceChange));
        assert_eq!(Tok::lookup(b"sc"), Some(Tok::ServiceChange));
        assert_eq!(Tok::lookup(b"MF"), Some(Tok::Modify));
        assert_eq!(Tok::lookup(b"nt/jit"), None);
        assert_eq!(
            Tok::lookup(b"TransactionResponseAck"),
            Some(Tok::ResponseAck)
        );
        assert_eq!(Tok::lookup(b"averyveryverylongwordthatisnotatoken"), None);
        for t in Tok::ALL {
            assert_eq!(Tok::lookup(t.long().as_bytes()), Some(*t));
            assert_eq!(
                Tok::lookup(t.short().to_ascii_lowercase().as_bytes()),
                Some(*t)
            );
        }
    }
}
