//! To-Path / From-Path rewriting for aware mode without CEMA (RFC 4975 §7.3, RFC 4976 §3): the
//! MGW terminates the MSRP hop on each leg, back to back.

use core::fmt;

use super::{path_uris, paths_equivalent, FrameHead, MsrpUri, Span, UriError};

/// One leg of a relayed MSRP session, as the MGC's SDP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpLegPaths {
    /// The MGW's own URI on this leg: what it put in the Local SDP `a=path`.
    pub local_uri: Vec<u8>,
    /// The peer's `a=path` from the Remote SDP (one URI, or several when the peer uses relays).
    pub remote_path: Vec<u8>,
}

impl MsrpLegPaths {
    /// The same URIs, borrowed.
    pub fn as_paths_ref(&self) -> LegPathsRef<'_> {
        LegPathsRef {
            local_uri: &self.local_uri,
            remote_path: &self.remote_path,
        }
    }
}

/// One leg's URIs, borrowed: for a relay that keeps them in its own fixed-size storage (the
/// worker carries them inline in its install command) instead of an [`MsrpLegPaths`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegPathsRef<'a> {
    /// The MGW's own URI on this leg (its Local SDP `a=path`).
    pub local_uri: &'a [u8],
    /// The peer's `a=path` (one URI, or several when the peer uses relays).
    pub remote_path: &'a [u8],
}

impl LegPathsRef<'_> {
    /// Checks that the local URI and every URI of the remote path parse (RFC 4975 §9), and that
    /// the remote path is not empty. Slow path: call it at install time.
    ///
    /// # Errors
    /// The first URI that does not parse ([`UriError::Scheme`] for an empty remote path).
    pub fn validate(&self) -> Result<(), UriError> {
        MsrpUri::parse(self.local_uri)?;
        let mut n = 0;
        for u in path_uris(self.remote_path) {
            MsrpUri::parse(u)?;
            n += 1;
        }
        if n == 0 {
            return Err(UriError::Scheme);
        }
        Ok(())
    }

    /// The most a head can grow when it leaves on this leg: its To-Path becomes this leg's
    /// remote path and its From-Path this leg's local URI (the old values are at least one
    /// byte each, so this bounds the growth from above).
    pub fn max_growth(&self) -> usize {
        self.local_uri.len() + self.remote_path.len()
    }
}

/// Which leg a frame arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegSide {
    /// Leg A (for example the access side).
    A,
    /// Leg B (for example the core side).
    B,
}

impl LegSide {
    /// The other leg.
    pub fn other(self) -> LegSide {
        match self {
            LegSide::A => LegSide::B,
            LegSide::B => LegSide::A,
        }
    }
}

/// Why a frame's head could not be rewritten. The relay counts it and releases the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RewriteError {
    /// The head lacks To-Path or From-Path (the parser would have refused it; a caller bug).
    MissingPath,
    /// The To-Path is not exactly this leg's own URI: the frame is not for this session
    /// (RFC 4975 §7.3 session matching).
    NotForUs,
    /// From-Path does not match the peer's `a=path` (only when verification is on).
    FromPathMismatch,
    /// `out` cannot hold the rewritten head; nothing useful was written.
    BufferTooSmall,
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RewriteError::MissingPath => "MSRP head lacks To-Path or From-Path",
            RewriteError::NotForUs => "MSRP To-Path is not this leg's URI",
            RewriteError::FromPathMismatch => "MSRP From-Path does not match the peer's path",
            RewriteError::BufferTooSmall => "output buffer too small for the rewritten head",
        })
    }
}

impl std::error::Error for RewriteError {}

/// Rewrites the To-Path and From-Path of frames crossing the MGW, B2BUA style.
///
/// **The rule.** Without CEMA each endpoint's SDP names the MGW as its MSRP peer: the MGC put the
/// MGW's own URI for leg X (`legX.local_uri`) into the `a=path` it sent to the endpoint on leg X.
/// So the MGW terminates the MSRP hop on each leg, as a back-to-back relay (the model of RFC 4976
/// §3, with the MGW as the last hop on each side). For every request *and* response arriving on
/// leg X and leaving on leg Y:
/// - the incoming `To-Path` must be exactly one URI equivalent to `legX.local_uri`
///   (RFC 4975 §6.1), else [`RewriteError::NotForUs`];
/// - optionally, the incoming `From-Path` must equal `legX.remote_path`, URI by URI;
/// - the outgoing `To-Path` becomes `legY.remote_path` (the far endpoint's `a=path`, verbatim,
///   so relays beyond it stay in the route) and the outgoing `From-Path` becomes
///   `legY.local_uri`.
///
/// Responses follow the same rule: a response travels back over the hop its request came on,
/// so its To-Path names the MGW on the leg it arrives on. Every other byte of the head (start
/// line, Message-ID, Byte-Range, reports, unknown headers, the blank line) is copied unchanged,
/// and the body is not touched at all: the relay forwards it from the parser's body ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpRewriter {
    legs: [MsrpLegPaths; 2],
    verify_from_path: bool,
}

impl MsrpRewriter {
    /// Builds a rewriter for one context. Allocates (slow path, at install time).
    ///
    /// # Errors
    /// A local URI or a remote path URI that does not parse.
    pub fn new(a: MsrpLegPaths, b: MsrpLegPaths, verify_from_path: bool) -> Result<Self, UriError> {
        for leg in [&a, &b] {
            leg.as_paths_ref().validate()?;
        }
        Ok(MsrpRewriter {
            legs: [a, b],
            verify_from_path,
        })
    }

    fn leg(&self, s: LegSide) -> &MsrpLegPaths {
        match s {
            LegSide::A => &self.legs[0],
            LegSide::B => &self.legs[1],
        }
    }

    /// Writes the rewritten head of a frame that arrived on `from` into `out`, and returns its
    /// length. `head` and `frame` are [`MsrpParser::head`](super::MsrpParser::head) and
    /// [`MsrpParser::frame`](super::MsrpParser::frame) after
    /// [`MsrpEvent::HeadersEnd`](super::MsrpEvent::HeadersEnd). No allocation.
    ///
    /// # Errors
    /// See [`RewriteError`]; `out` then holds nothing useful.
    pub fn rewrite_head(
        &self,
        from: LegSide,
        head: &[u8],
        frame: &FrameHead,
        out: &mut [u8],
    ) -> Result<usize, RewriteError> {
        rewrite_head_between(
            self.leg(from).as_paths_ref(),
            self.leg(from.other()).as_paths_ref(),
            self.verify_from_path,
            head,
            frame,
            out,
        )
    }
}

/// [`MsrpRewriter::rewrite_head`] over borrowed URIs: the head of a frame that arrived on the
/// leg described by `inbound` is written into `out` for the leg described by `outbound`. Same
/// rule, same checks, no allocation.
///
/// # Errors
/// See [`RewriteError`]; `out` then holds nothing useful.
pub fn rewrite_head_between(
    inbound: LegPathsRef<'_>,
    outbound: LegPathsRef<'_>,
    verify_from_path: bool,
    head: &[u8],
    frame: &FrameHead,
    out: &mut [u8],
) -> Result<usize, RewriteError> {
    let (Some(to), Some(fp)) = (frame.to_path, frame.from_path) else {
        return Err(RewriteError::MissingPath);
    };
    // Spans from a parser are ordered and inside `head`; refuse anything else rather than
    // panic on a caller's mistake.
    let ordered = |a: Span, b: Span| a.end <= b.start || b.end <= a.start;
    if to.start > to.end
        || fp.start > fp.end
        || to.end as usize > head.len()
        || fp.end as usize > head.len()
        || !ordered(to, fp)
    {
        return Err(RewriteError::MissingPath);
    }
    // Fast path: byte-identical values (what conforming peers send) need no URI parsing.
    let to_value = &head[to.range()];
    if to_value != inbound.local_uri {
        let mut uris = path_uris(to_value);
        let ours = MsrpUri::parse(inbound.local_uri).map_err(|_| RewriteError::NotForUs)?;
        match (uris.next().map(MsrpUri::parse), uris.next()) {
            (Some(Ok(u)), None) if u.equivalent(&ours) => {}
            _ => return Err(RewriteError::NotForUs),
        }
    }
    let from_value = &head[fp.range()];
    if verify_from_path
        && from_value != inbound.remote_path
        && !paths_equivalent(from_value, inbound.remote_path)
    {
        return Err(RewriteError::FromPathMismatch);
    }
    let (first, first_new, second, second_new): (Span, &[u8], Span, &[u8]) = if to.start < fp.start
    {
        (to, outbound.remote_path, fp, outbound.local_uri)
    } else {
        (fp, outbound.local_uri, to, outbound.remote_path)
    };
    let parts: [&[u8]; 5] = [
        &head[..first.start as usize],
        first_new,
        &head[first.end as usize..second.start as usize],
        second_new,
        &head[second.end as usize..],
    ];
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total > out.len() {
        return Err(RewriteError::BufferTooSmall);
    }
    let mut at = 0;
    for p in parts {
        out[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    Ok(total)
}
