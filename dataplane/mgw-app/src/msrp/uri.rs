//! MSRP URIs: the `msrp:`/`msrps:` parser (RFC 4975 §9), the §6.1 comparison, and paths as
//! space-separated URI lists.

use core::fmt;

/// Why an MSRP URI was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UriError {
    /// Not `msrp://` or `msrps://`.
    Scheme,
    /// Empty or malformed host.
    Host,
    /// Port not 1..=5 digits within 0..=65535.
    Port,
    /// A session-id character outside `unreserved / "+" / "=" / "/"`.
    SessionId,
    /// The mandatory `;transport` is missing or not `1*ALPHANUM`.
    Transport,
    /// A URI parameter holds a forbidden character.
    Param,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriError::Scheme => "MSRP URI scheme is not msrp or msrps",
            UriError::Host => "malformed MSRP URI host",
            UriError::Port => "malformed MSRP URI port",
            UriError::SessionId => "malformed MSRP URI session-id",
            UriError::Transport => "MSRP URI transport missing or malformed",
            UriError::Param => "malformed MSRP URI parameter",
        })
    }
}

impl std::error::Error for UriError {}

/// A parsed `msrp[s]://[userinfo@]host[:port][/session-id];transport[;params]` (RFC 4975 §9),
/// borrowing the text it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsrpUri<'a> {
    /// `msrps` (TLS) rather than `msrp`.
    pub secure: bool,
    /// The userinfo before `@`, if any.
    pub userinfo: Option<&'a [u8]>,
    /// The host: a name, an IPv4 literal, or an IPv6 literal with its brackets.
    pub host: &'a [u8],
    /// The port, if given.
    pub port: Option<u16>,
    /// The session-id after `/`, if any.
    pub session_id: Option<&'a [u8]>,
    /// The transport parameter (`tcp`).
    pub transport: &'a [u8],
    /// Further `;name[=value]` parameters, with their leading `;` (empty when none).
    pub params: &'a [u8],
}

impl<'a> MsrpUri<'a> {
    /// Parses one URI (no surrounding whitespace).
    ///
    /// # Errors
    /// [`UriError`] names the first part that does not follow RFC 4975 §9.
    pub fn parse(s: &'a [u8]) -> Result<Self, UriError> {
        let (secure, rest) = if s.len() >= 7 && s[..7].eq_ignore_ascii_case(b"msrp://") {
            (false, &s[7..])
        } else if s.len() >= 8 && s[..8].eq_ignore_ascii_case(b"msrps://") {
            (true, &s[8..])
        } else {
            return Err(UriError::Scheme);
        };
        let auth_end = rest
            .iter()
            .position(|&b| b == b'/' || b == b';')
            .unwrap_or(rest.len());
        let authority = &rest[..auth_end];
        let (userinfo, hostport) = match authority.iter().rposition(|&b| b == b'@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (host, port) = if hostport.first() == Some(&b'[') {
            let close = hostport
                .iter()
                .position(|&b| b == b']')
                .ok_or(UriError::Host)?;
            let inner = &hostport[1..close];
            if inner.is_empty()
                || !inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err(UriError::Host);
            }
            (&hostport[..=close], &hostport[close + 1..])
        } else {
            let colon = hostport
                .iter()
                .position(|&b| b == b':')
                .unwrap_or(hostport.len());
            (&hostport[..colon], &hostport[colon..])
        };
        if host.is_empty()
            || (host[0] != b'['
                && !host
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
        {
            return Err(UriError::Host);
        }
        let port = match port {
            [] => None,
            [b':', digits @ ..] => Some(parse_port(digits).ok_or(UriError::Port)?),
            _ => return Err(UriError::Host),
        };
        let mut rest = &rest[auth_end..];
        let mut session_id = None;
        if let [b'/', tail @ ..] = rest {
            let end = tail.iter().position(|&b| b == b';').unwrap_or(tail.len());
            let sid = &tail[..end];
            if sid.is_empty()
                || !sid.iter().all(|&b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'=' | b'/')
                })
            {
                return Err(UriError::SessionId);
            }
            session_id = Some(sid);
            rest = &tail[end..];
        }
        let [b';', tail @ ..] = rest else {
            return Err(UriError::Transport);
        };
        let end = tail.iter().position(|&b| b == b';').unwrap_or(tail.len());
        let transport = &tail[..end];
        if transport.is_empty() || !transport.iter().all(u8::is_ascii_alphanumeric) {
            return Err(UriError::Transport);
        }
        let params = &tail[end..];
        if !params.iter().all(|&b| b.is_ascii_graphic()) {
            return Err(UriError::Param);
        }
        Ok(MsrpUri {
            secure,
            userinfo,
            host,
            port,
            session_id,
            transport,
            params,
        })
    }

    /// RFC 4975 §6.1 equivalence: scheme and host compare case-insensitively, ports must both be
    /// absent or equal, the session-id compares exactly (case-sensitively), the transport
    /// case-insensitively. Userinfo and other parameters do not take part.
    pub fn equivalent(&self, other: &MsrpUri<'_>) -> bool {
        self.secure == other.secure
            && self.host.eq_ignore_ascii_case(other.host)
            && self.port == other.port
            && self.session_id == other.session_id
            && self.transport.eq_ignore_ascii_case(other.transport)
    }
}

fn parse_port(d: &[u8]) -> Option<u16> {
    if d.is_empty() || d.len() > 5 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = d
        .iter()
        .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'));
    u16::try_from(v).ok()
}

/// The URIs of a To-Path/From-Path value or an SDP `a=path` (space-separated, RFC 4975 §9).
pub fn path_uris(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|s| !s.is_empty())
}

/// True when two paths have the same number of URIs and each pair is [`MsrpUri::equivalent`].
/// A URI that does not parse makes the paths unequal.
pub fn paths_equivalent(a: &[u8], b: &[u8]) -> bool {
    let mut ia = path_uris(a);
    let mut ib = path_uris(b);
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => match (MsrpUri::parse(x), MsrpUri::parse(y)) {
                (Ok(x), Ok(y)) if x.equivalent(&y) => {}
                _ => return false,
            },
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parse_and_compare() {
        let u = MsrpUri::parse(b"msrps://alice@[2001:db8::1]:12763/kjhd37s2s20w2a;tcp;foo=bar")
            .unwrap();
        assert!(u.secure);
        assert_eq!(u.userinfo, Some(&b"alice"[..]));
        assert_eq!(u.host, b"[2001:db8::1]");
        assert_eq!(u.port, Some(12763));
        assert_eq!(u.session_id, Some(&b"kjhd37s2s20w2a"[..]));
        assert_eq!(u.transport, b"tcp");
        assert_eq!(u.params, b";foo=bar");
        let v = MsrpUri::parse(b"MSRPS://Bob@[2001:DB8::1]:12763/kjhd37s2s20w2a;TCP").unwrap();
        assert!(
            u.equivalent(&v),
            "scheme/host/transport are case-insensitive, userinfo ignored"
        );
        let w = MsrpUri::parse(b"msrps://[2001:db8::1]:12763/KJHD37s2s20w2a;tcp").unwrap();
        assert!(!u.equivalent(&w), "session-id is case-sensitive");
        let n = MsrpUri::parse(b"msrp://relay.example.net;tcp").unwrap();
        assert_eq!((n.port, n.session_id, n.secure), (None, None, false));
        for bad in [
            &b"sip://a:1/s;tcp"[..],
            b"msrp://a:1/s",
            b"msrp://:1/s;tcp",
            b"msrp://a:99999/s;tcp",
            b"msrp://a:1/s s;tcp",
            b"msrp://[zz]:1/s;tcp",
            b"msrp://a:1/s;",
            b"msrp://a b/s;tcp",
        ] {
            assert!(MsrpUri::parse(bad).is_err(), "{bad:?}");
        }
        assert!(paths_equivalent(
            b"msrp://r:1/x;tcp  msrp://a:2/y;tcp",
            b"MSRP://R:1/x;tcp msrp://a:2/y;TCP"
        ));
        assert!(!paths_equivalent(
            b"msrp://r:1/x;tcp",
            b"msrp://r:1/x;tcp msrp://a:2/y;tcp"
        ));
    }
}
