//! SDP (RFC 8866) as carried in H.248 Local and Remote descriptors.
//!
//! The representation is lossless: every line is kept, in order, as `<type>=<value>`, and
//! [`Sdp::to_text`] writes back exactly those lines. Typed accessors read the attributes mgwd acts
//! on: connection and media lines, RFC 4145 `a=setup`/`a=connection`, RFC 8122 `a=fingerprint`,
//! RFC 8842 `a=tls-id`, RFC 4975 `a=path`/`a=accept-types`, RFC 6714 `a=msrp-cema`, RFC 8856
//! BFCP attributes and the T.38 attributes of ITU-T T.38 Annex D / RFC 7345.
//!
//! H.248.1 §7.1.8 lets the MGC write `$` ("choose") for a value the MG must fill in (port,
//! address, fingerprint) and `*` for wildcards; both are accepted where a value is expected.

use std::fmt;
use std::net::IpAddr;

/// One SDP line, `<kind>=<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The one-letter type (`v`, `o`, `c`, `m`, `a`, ...).
    pub kind: u8,
    /// Everything after `=`.
    pub value: String,
}

/// A session description: session-level lines, then media sections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sdp {
    /// Lines before the first `m=`.
    pub session: Vec<Line>,
    /// One entry per `m=` line.
    pub media: Vec<Media>,
}

/// A media section: its `m=` line and the lines after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// The parsed `m=` line.
    pub m: MediaLine,
    /// Lines after `m=` up to the next `m=`.
    pub lines: Vec<Line>,
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    /// `audio`, `message`, `application`, `image`, ...
    pub media: String,
    /// Port or `$`.
    pub port: Port,
    /// `/<count>` suffix.
    pub port_count: Option<u16>,
    /// Transport protocol, e.g. `TCP/TLS/MSRP`.
    pub proto: String,
    /// Formats (`*`, `t38`, `*`...).
    pub formats: Vec<String>,
}

/// A port that may be left for the MG to choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// A number.
    Number(u16),
    /// `$`: the MG chooses.
    Choose,
}

/// A value the MG may be asked to choose (`$`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choosable<T> {
    /// A concrete value the MGC wrote; the MG keeps it.
    Value(T),
    /// `$`.
    Choose,
}

/// `c=<nettype> <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `IN`.
    pub net_type: String,
    /// `IP4` / `IP6` (or `$`).
    pub addr_type: String,
    /// The address, or `$`.
    pub address: Choosable<IpAddr>,
}

/// Transport protocols mgwd handles (RFC 4975, RFC 8856, RFC 7345, ITU-T T.38 Annex D).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proto {
    /// `TCP/MSRP`.
    TcpMsrp,
    /// `TCP/TLS/MSRP`.
    TcpTlsMsrp,
    /// `TCP/BFCP`.
    TcpBfcp,
    /// `TCP/TLS/BFCP`.
    TcpTlsBfcp,
    /// `UDP/BFCP`.
    UdpBfcp,
    /// `UDP/TLS/BFCP`.
    UdpTlsBfcp,
    /// `udptl`.
    Udptl,
    /// `UDP/TLS/UDPTL`.
    UdpTlsUdptl,
    /// `TCP` (opaque byte stream, RFC 4145).
    Tcp,
    /// `TCP/TLS` (opaque TLS stream, RFC 8122).
    TcpTls,
    /// Anything else.
    Other(String),
}

impl Proto {
    /// The canonical `m=` line spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Proto::TcpMsrp => "TCP/MSRP",
            Proto::TcpTlsMsrp => "TCP/TLS/MSRP",
            Proto::TcpBfcp => "TCP/BFCP",
            Proto::TcpTlsBfcp => "TCP/TLS/BFCP",
            Proto::UdpBfcp => "UDP/BFCP",
            Proto::UdpTlsBfcp => "UDP/TLS/BFCP",
            Proto::Udptl => "udptl",
            Proto::UdpTlsUdptl => "UDP/TLS/UDPTL",
            Proto::Tcp => "TCP",
            Proto::TcpTls => "TCP/TLS",
            Proto::Other(s) => s,
        }
    }

    /// Classify a proto string (case-insensitive).
    pub fn parse(s: &str) -> Proto {
        match s.to_ascii_uppercase().as_str() {
            "TCP/MSRP" => Proto::TcpMsrp,
            "TCP/TLS/MSRP" => Proto::TcpTlsMsrp,
            "TCP/BFCP" => Proto::TcpBfcp,
            "TCP/TLS/BFCP" => Proto::TcpTlsBfcp,
            "UDP/BFCP" => Proto::UdpBfcp,
            "UDP/TLS/BFCP" => Proto::UdpTlsBfcp,
            "UDPTL" => Proto::Udptl,
            "UDP/TLS/UDPTL" => Proto::UdpTlsUdptl,
            "TCP" => Proto::Tcp,
            "TCP/TLS" => Proto::TcpTls,
            _ => Proto::Other(s.to_owned()),
        }
    }
}

/// RFC 4145 §4 `a=setup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// `active`: this endpoint opens the connection.
    Active,
    /// `passive`: this endpoint accepts.
    Passive,
    /// `actpass`: either.
    ActPass,
    /// `holdconn`: no connection for now.
    HoldConn,
}

impl Setup {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }
}

/// RFC 4145 §5 `a=connection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionAttr {
    /// `new`.
    New,
    /// `existing`.
    Existing,
}

/// RFC 8122 §5 `a=fingerprint:<hash-func> <fingerprint>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash function, lower case (`sha-256`).
    pub hash: String,
    /// The digest bytes.
    pub digest: Vec<u8>,
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hash.to_ascii_uppercase())?;
        for (i, b) in self.digest.iter().enumerate() {
            write!(f, "{}{b:02X}", if i == 0 { ' ' } else { ':' })?;
        }
        Ok(())
    }
}

/// T.38 attributes (ITU-T T.38 Annex D.2.3, RFC 7345).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct T38Params {
    /// `T38FaxVersion`.
    pub version: Option<u8>,
    /// `T38MaxBitRate`.
    pub max_bit_rate: Option<u32>,
    /// `T38FaxRateManagement` (`localTCF` / `transferredTCF`).
    pub rate_management: Option<String>,
    /// `T38FaxMaxBuffer`.
    pub max_buffer: Option<u32>,
    /// `T38FaxMaxDatagram`.
    pub max_datagram: Option<u32>,
    /// `T38FaxUdpEC` (`t38UDPRedundancy` / `t38UDPFEC`).
    pub udp_ec: Option<String>,
}

/// Why SDP text could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpError {
    /// A line is not `<letter>=<value>` (1-based line number).
    BadLine(usize),
    /// An `m=` line is malformed (1-based line number).
    BadMediaLine(usize),
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdpError::BadLine(n) => write!(f, "SDP line {n} is not <type>=<value>"),
            SdpError::BadMediaLine(n) => write!(f, "SDP m= line {n} is malformed"),
        }
    }
}

impl std::error::Error for SdpError {}

impl Sdp {
    /// Parse SDP text. Lines may end in CRLF or LF; blank lines and leading white space (from
    /// H.248 pretty printing) are ignored.
    ///
    /// # Errors
    /// [`SdpError`] for a line that is not `<letter>=<value>` or a malformed `m=` line.
    pub fn parse(text: &str) -> Result<Sdp, SdpError> {
        let mut sdp = Sdp::default();
        for (i, raw) in text.lines().enumerate() {
            let l = raw.trim();
            if l.is_empty() {
                continue;
            }
            let b = l.as_bytes();
            let kind = match b {
                [k, b'=', ..] if k.is_ascii_alphabetic() => *k,
                _ => return Err(SdpError::BadLine(i + 1)),
            };
            let value = l.get(2..).unwrap_or("").to_owned();
            if kind == b'm' {
                let m = MediaLine::parse(&value).ok_or(SdpError::BadMediaLine(i + 1))?;
                sdp.media.push(Media {
                    m,
                    lines: Vec::new(),
                });
            } else {
                let line = Line { kind, value };
                match sdp.media.last_mut() {
                    Some(m) => m.lines.push(line),
                    None => sdp.session.push(line),
                }
            }
        }
        Ok(sdp)
    }

    /// The text, one line per `eol`-terminated line, without a final `eol`.
    pub fn to_text(&self, eol: &str) -> String {
        let mut out = String::new();
        let mut push = |k: u8, v: &str| {
            if !out.is_empty() {
                out.push_str(eol);
            }
            out.push(char::from(k));
            out.push('=');
            out.push_str(v);
        };
        for l in &self.session {
            push(l.kind, &l.value);
        }
        for m in &self.media {
            push(b'm', &m.m.to_string());
            for l in &m.lines {
                push(l.kind, &l.value);
            }
        }
        out
    }

    /// The session-level `c=`.
    pub fn connection(&self) -> Option<Connection> {
        find_connection(&self.session)
    }

    /// Session-level attribute value (`Some("")` for a flag attribute).
    pub fn attr(&self, name: &str) -> Option<&str> {
        attrs(&self.session, name).next()
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text("\r\n"))
    }
}

impl MediaLine {
    fn parse(v: &str) -> Option<MediaLine> {
        let mut it = v.split_ascii_whitespace();
        let media = it.next()?.to_owned();
        let port_s = it.next()?;
        let (p, count) = match port_s.split_once('/') {
            Some((p, c)) => (p, Some(c.parse().ok()?)),
            None => (port_s, None),
        };
        let port = if p == "$" {
            Port::Choose
        } else {
            Port::Number(p.parse().ok()?)
        };
        let proto = it.next()?.to_owned();
        let formats = it.map(str::to_owned).collect();
        Some(MediaLine {
            media,
            port,
            port_count: count,
            proto,
            formats,
        })
    }
}

impl fmt::Display for MediaLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.media)?;
        match self.port {
            Port::Number(n) => write!(f, "{n}")?,
            Port::Choose => f.write_str("$")?,
        }
        if let Some(c) = self.port_count {
            write!(f, "/{c}")?;
        }
        write!(f, " {}", self.proto)?;
        for fmt_ in &self.formats {
            write!(f, " {fmt_}")?;
        }
        Ok(())
    }
}

fn attrs<'a, 'n>(lines: &'a [Line], name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
    lines
        .iter()
        .filter(|l| l.kind == b'a')
        .filter_map(move |l| {
            let (n, v) = l.value.split_once(':').unwrap_or((&l.value, ""));
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
}

fn find_connection(lines: &[Line]) -> Option<Connection> {
    let l = lines.iter().find(|l| l.kind == b'c')?;
    let mut it = l.value.split_ascii_whitespace();
    let net_type = it.next()?.to_owned();
    let addr_type = it.next()?.to_owned();
    let a = it.next()?;
    // A multicast `addr/ttl` suffix is not used here; keep the address part.
    let a = a.split('/').next().unwrap_or(a);
    let address = if a == "$" {
        Choosable::Choose
    } else {
        Choosable::Value(a.parse().ok()?)
    };
    Some(Connection {
        net_type,
        addr_type,
        address,
    })
}

impl Media {
    /// The proto, classified.
    pub fn proto(&self) -> Proto {
        Proto::parse(&self.m.proto)
    }

    /// First value of attribute `name` at media level (`Some("")` for a flag attribute).
    pub fn attr(&self, name: &str) -> Option<&str> {
        attrs(&self.lines, name).next()
    }

    /// All values of attribute `name` at media level.
    pub fn attrs<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        attrs(&self.lines, name)
    }

    /// Media-level `c=`, else the session-level one (RFC 8866 §5.7).
    pub fn connection(&self, session: &Sdp) -> Option<Connection> {
        find_connection(&self.lines).or_else(|| session.connection())
    }

    /// `a=setup` (RFC 4145 §4); `None` if absent or unknown.
    pub fn setup(&self) -> Option<Setup> {
        match self.attr("setup")?.to_ascii_lowercase().as_str() {
            "active" => Some(Setup::Active),
            "passive" => Some(Setup::Passive),
            "actpass" => Some(Setup::ActPass),
            "holdconn" => Some(Setup::HoldConn),
            _ => None,
        }
    }

    /// True if `a=setup` is present but not one of the four RFC 4145 values.
    pub fn setup_invalid(&self) -> bool {
        self.attr("setup").is_some() && self.setup().is_none()
    }

    /// `a=connection` (RFC 4145 §5).
    pub fn connection_attr(&self) -> Option<ConnectionAttr> {
        match self.attr("connection")?.to_ascii_lowercase().as_str() {
            "new" => Some(ConnectionAttr::New),
            "existing" => Some(ConnectionAttr::Existing),
            _ => None,
        }
    }

    /// Media-level `a=fingerprint`s, else the session-level ones (RFC 8122 §5). `$` entries
    /// (the MGC asking for ours) are reported by [`Media::fingerprint_requested`], not here.
    pub fn fingerprints(&self, session: &Sdp) -> Result<Vec<Fingerprint>, SdpError> {
        let mut v: Vec<&str> = self.attrs("fingerprint").collect();
        if v.is_empty() {
            v = attrs(&session.session, "fingerprint").collect();
        }
        v.into_iter()
            .filter(|f| f.trim() != "$")
            .map(|f| parse_fingerprint(f).ok_or(SdpError::BadLine(0)))
            .collect()
    }

    /// True if the media asks the MG to fill in its own fingerprint (`a=fingerprint:$`, or
    /// `a=fingerprint:<hash> $`).
    pub fn fingerprint_requested(&self) -> bool {
        self.attrs("fingerprint")
            .any(|f| f == "$" || f.split_ascii_whitespace().nth(1) == Some("$"))
    }

    /// `a=tls-id` (RFC 8842 §4).
    pub fn tls_id(&self) -> Option<&str> {
        self.attr("tls-id")
    }

    /// `a=path` URIs (RFC 4975 §8.2).
    pub fn path(&self) -> Vec<&str> {
        self.attr("path")
            .map(|p| p.split_ascii_whitespace().collect())
            .unwrap_or_default()
    }

    /// `a=accept-types` (RFC 4975 §8.6).
    pub fn accept_types(&self) -> Vec<&str> {
        self.attr("accept-types")
            .map(|p| p.split_ascii_whitespace().collect())
            .unwrap_or_default()
    }

    /// `a=msrp-cema` present (RFC 6714 §4).
    pub fn msrp_cema(&self) -> bool {
        self.attr("msrp-cema").is_some()
    }

    /// `a=floorctrl` roles (RFC 8856 §5).
    pub fn floorctrl(&self) -> Vec<&str> {
        self.attr("floorctrl")
            .map(|p| p.split_ascii_whitespace().collect())
            .unwrap_or_default()
    }

    /// `a=confid` (RFC 8856 §6).
    pub fn confid(&self) -> Option<u32> {
        self.attr("confid")?.parse().ok()
    }

    /// `a=userid` (RFC 8856 §7).
    pub fn userid(&self) -> Option<u16> {
        self.attr("userid")?.parse().ok()
    }

    /// `a=floorid:<id> [mstrm:<label> ...]` (RFC 8856 §8), as (floor id, labels).
    pub fn floorids(&self) -> Vec<(u16, Vec<&str>)> {
        self.attrs("floorid")
            .filter_map(|v| {
                let mut it = v.split_ascii_whitespace();
                let id = it.next()?.parse().ok()?;
                let labels = it
                    .filter_map(|m| {
                        m.strip_prefix("mstrm:")
                            .or_else(|| m.strip_prefix("m-stream:"))
                    })
                    .collect();
                Some((id, labels))
            })
            .collect()
    }

    /// `a=bfcpver` versions (RFC 8856 §9).
    pub fn bfcpver(&self) -> Vec<u8> {
        self.attr("bfcpver")
            .map(|p| {
                p.split_ascii_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The T.38 attributes.
    pub fn t38(&self) -> T38Params {
        let num = |n: &str| self.attr(n).and_then(|v| v.parse().ok());
        T38Params {
            version: num("T38FaxVersion").and_then(|v: u32| u8::try_from(v).ok()),
            max_bit_rate: num("T38MaxBitRate"),
            rate_management: self.attr("T38FaxRateManagement").map(str::to_owned),
            max_buffer: num("T38FaxMaxBuffer"),
            max_datagram: num("T38FaxMaxDatagram"),
            udp_ec: self.attr("T38FaxUdpEC").map(str::to_owned),
        }
    }

    /// Set (replace every occurrence of, or append) attribute `name` to `value`
    /// (`None` = flag attribute).
    pub fn set_attr(&mut self, name: &str, value: Option<&str>) {
        let text = match value {
            Some(v) => format!("{name}:{v}"),
            None => name.to_owned(),
        };
        let mut done = false;
        self.lines.retain_mut(|l| {
            if l.kind != b'a' {
                return true;
            }
            let n = l.value.split_once(':').map_or(l.value.as_str(), |x| x.0);
            if !n.trim().eq_ignore_ascii_case(name) {
                return true;
            }
            if done {
                return false;
            }
            l.value.clone_from(&text);
            done = true;
            true
        });
        if !done {
            self.lines.push(Line {
                kind: b'a',
                value: text,
            });
        }
    }

    /// Set the media-level `c=` (replacing it, or inserting it first).
    pub fn set_connection(&mut self, addr: IpAddr) {
        let v = format!("IN {} {addr}", if addr.is_ipv4() { "IP4" } else { "IP6" });
        if let Some(l) = self.lines.iter_mut().find(|l| l.kind == b'c') {
            l.value = v;
        } else {
            self.lines.insert(
                0,
                Line {
                    kind: b'c',
                    value: v,
                },
            );
        }
    }
}

/// `<hash-func> <XX:XX:...>`.
pub fn parse_fingerprint(v: &str) -> Option<Fingerprint> {
    let mut it = v.split_ascii_whitespace();
    let hash = it.next()?.to_ascii_lowercase();
    let hex = it.next()?;
    if it.next().is_some() {
        return None;
    }
    let digest = hex
        .split(':')
        .map(|b| {
            if b.len() == 2 {
                u8::from_str_radix(b, 16).ok()
            } else {
                None
            }
        })
        .collect::<Option<Vec<u8>>>()?;
    if digest.is_empty() {
        return None;
    }
    Some(Fingerprint { hash, digest })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSRP_TLS: &str = "v=0\r\no=- 2890844526 2890844526 IN IP4 198.51.100.10\r\ns=-\r\nc=IN IP4 198.51.100.10\r\nt=0 0\r\nm=message 7394 TCP/TLS/MSRP *\r\na=accept-types:message/cpim text/plain\r\na=path:msrps://198.51.100.10:7394/jshA7weztas;tcp\r\na=setup:active\r\na=connection:new\r\na=fingerprint:SHA-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:5E:1B:82:4F:66:9A:37:C6:61:AD:51:9E\r\na=msrp-cema";

    #[test]
    fn msrp_over_tls_attributes() {
        let s = Sdp::parse(MSRP_TLS).unwrap();
        assert_eq!(s.to_text("\r\n"), MSRP_TLS, "lossless");
        let m = &s.media[0];
        assert_eq!(m.proto(), Proto::TcpTlsMsrp);
        assert_eq!(m.m.port, Port::Number(7394));
        assert_eq!(m.setup(), Some(Setup::Active));
        assert_eq!(m.connection_attr(), Some(ConnectionAttr::New));
        assert!(m.msrp_cema());
        assert_eq!(m.accept_types(), vec!["message/cpim", "text/plain"]);
        assert_eq!(m.path(), vec!["msrps://198.51.100.10:7394/jshA7weztas;tcp"]);
        let fp = m.fingerprints(&s).unwrap();
        assert_eq!(fp[0].hash, "sha-256");
        assert_eq!(fp[0].digest.len(), 32);
        assert_eq!(fp[0].digest[0], 0x4A);
        assert_eq!(
            m.connection(&s).unwrap().address,
            Choosable::Value("198.51.100.10".parse().unwrap())
        );
    }

    #[test]
    fn h248_choose_values() {
        let s = Sdp::parse("v=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\na=fingerprint:$").unwrap();
        let m = &s.media[0];
        assert_eq!(m.m.port, Port::Choose);
        assert_eq!(m.connection(&s).unwrap().address, Choosable::Choose);
        assert!(m.fingerprint_requested());
        assert!(m.fingerprints(&s).unwrap().is_empty());
    }

    #[test]
    fn bfcp_attributes() {
        let s = Sdp::parse(
            "v=0\nm=application 50000 UDP/TLS/BFCP *\na=setup:actpass\na=floorctrl:c-only s-only\na=confid:4321\na=userid:1234\na=floorid:1 mstrm:10\na=floorid:2 mstrm:11\na=bfcpver:1 2\na=tls-id:abc",
        )
        .unwrap();
        let m = &s.media[0];
        assert_eq!(m.proto(), Proto::UdpTlsBfcp);
        assert_eq!(m.floorctrl(), vec!["c-only", "s-only"]);
        assert_eq!(m.confid(), Some(4321));
        assert_eq!(m.userid(), Some(1234));
        assert_eq!(m.floorids(), vec![(1, vec!["10"]), (2, vec!["11"])]);
        assert_eq!(m.bfcpver(), vec![1, 2]);
        assert_eq!(m.tls_id(), Some("abc"));
        assert_eq!(m.setup(), Some(Setup::ActPass));
    }

    #[test]
    fn t38_attributes() {
        let s = Sdp::parse("v=0\nm=image 5004 UDP/TLS/UDPTL t38\na=T38FaxVersion:0\na=T38MaxBitRate:14400\na=T38FaxRateManagement:transferredTCF\na=T38FaxMaxBuffer:262\na=T38FaxMaxDatagram:320\na=T38FaxUdpEC:t38UDPRedundancy").unwrap();
        let m = &s.media[0];
        assert_eq!(m.proto(), Proto::UdpTlsUdptl);
        let t = m.t38();
        assert_eq!(t.version, Some(0));
        assert_eq!(t.max_bit_rate, Some(14400));
        assert_eq!(t.rate_management.as_deref(), Some("transferredTCF"));
        assert_eq!(t.max_buffer, Some(262));
        assert_eq!(t.max_datagram, Some(320));
        assert_eq!(t.udp_ec.as_deref(), Some("t38UDPRedundancy"));
    }

    #[test]
    fn set_attr_and_connection() {
        let mut s = Sdp::parse("v=0\nm=message $ TCP/TLS/MSRP *\na=setup:passive\na=fingerprint:$")
            .unwrap();
        let m = &mut s.media[0];
        m.m.port = Port::Number(40000);
        m.set_connection("127.0.0.1".parse().unwrap());
        m.set_attr("fingerprint", Some("SHA-256 AA:BB"));
        m.set_attr("msrp-cema", None);
        assert_eq!(
            s.to_text("\n"),
            "v=0\nm=message 40000 TCP/TLS/MSRP *\nc=IN IP4 127.0.0.1\na=setup:passive\na=fingerprint:SHA-256 AA:BB\na=msrp-cema"
        );
    }

    #[test]
    fn bad_lines_are_errors() {
        assert_eq!(Sdp::parse("v=0\nbogus"), Err(SdpError::BadLine(2)));
        assert_eq!(Sdp::parse("v=0\nm=audio"), Err(SdpError::BadMediaLine(2)));
    }

    proptest! {
        #[test]
        fn never_panics_and_is_lossless(text in "([a-z]=[ -~]{0,30}\n){0,8}") {
            if let Ok(s) = Sdp::parse(&text) {
                let again = Sdp::parse(&s.to_text("\n")).unwrap();
                prop_assert_eq!(again, s);
            }
        }
    }
}
