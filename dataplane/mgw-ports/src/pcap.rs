//! Classic pcap output (the libpcap 2.4 format that `tshark -r` reads), and a port wrapper that
//! records every frame crossing a port.

use mgw_core::port::{Batch, Port, PortStats};
use mgw_core::time::{Clock, Instant};
use mgw_core::wire::EthernetAddress;
use std::io::{self, Write};

/// Link type for Ethernet frames.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Link type for raw IPv4/IPv6 packets.
pub const LINKTYPE_RAW: u32 = 101;

/// Writes a classic pcap stream (microsecond timestamps, native byte order as libpcap does).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header for `linktype`.
    ///
    /// # Errors
    /// Any I/O error from `out`.
    pub fn new(mut out: W, linktype: u32) -> io::Result<Self> {
        let snaplen = 65535u32;
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&linktype.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, snaplen })
    }

    /// Appends one frame captured at `ts`.
    ///
    /// # Errors
    /// Any I/O error from the output.
    pub fn write_packet(&mut self, ts: Instant, frame: &[u8]) -> io::Result<()> {
        let incl = frame.len().min(self.snaplen as usize);
        let micros = ts.as_micros();
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(incl as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&frame[..incl])
    }

    /// Flushes the output.
    ///
    /// # Errors
    /// Any I/O error from the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Gives the output back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Records every frame received from and offered to the wrapped port.
///
/// Transmitted frames are recorded when offered, before the inner port takes them, as a tap on
/// the transmit path would see them. This is a debugging wrapper: it writes to `W` on the packet
/// path, so put a `BufWriter` under it. Write errors are counted, never fatal to traffic.
#[derive(Debug)]
pub struct PcapPort<P, W: Write> {
    inner: P,
    writer: PcapWriter<W>,
    clock: Clock,
    write_errors: u64,
}

impl<P: Port, W: Write> PcapPort<P, W> {
    /// Wraps `inner`, writing Ethernet frames to `out`, timestamped by `clock`.
    ///
    /// # Errors
    /// An I/O error writing the pcap header.
    pub fn new(inner: P, out: W, clock: Clock) -> io::Result<Self> {
        Ok(PcapPort {
            inner,
            writer: PcapWriter::new(out, LINKTYPE_ETHERNET)?,
            clock,
            write_errors: 0,
        })
    }

    /// The wrapped port.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The wrapped port, writable.
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// Frames that could not be written.
    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }

    /// Flushes and gives back the port and the output.
    ///
    /// # Errors
    /// An I/O error from the final flush.
    pub fn finish(mut self) -> io::Result<(P, W)> {
        self.writer.flush()?;
        Ok((self.inner, self.writer.into_inner()))
    }
}

impl<P: Port, W: Write> Port for PcapPort<P, W> {
    type Buffer = P::Buffer;

    fn rx_burst(&mut self, batch: &mut Batch<P::Buffer>) -> usize {
        let before = batch.len();
        let n = self.inner.rx_burst(batch);
        let now = self.clock.now();
        for f in batch.iter().skip(before) {
            if self.writer.write_packet(now, f.as_ref()).is_err() {
                self.write_errors += 1;
            }
        }
        n
    }

    fn tx_burst(&mut self, batch: &mut Batch<P::Buffer>) -> usize {
        // A frame refused here and offered again later appears twice in the capture: marking
        // buffers as recorded would cost a field in every buffer for a debugging aid.
        let now = self.clock.now();
        for f in batch.iter() {
            if self.writer.write_packet(now, f.as_ref()).is_err() {
                self.write_errors += 1;
            }
        }
        self.inner.tx_burst(batch)
    }

    fn alloc(&mut self) -> Option<P::Buffer> {
        self.inner.alloc()
    }

    fn mac(&self) -> EthernetAddress {
        self.inner.mac()
    }

    fn max_frame(&self) -> usize {
        self.inner.max_frame()
    }

    fn stats(&self) -> PortStats {
        self.inner.stats()
    }

    fn poll_at(&self) -> Option<Instant> {
        self.inner.poll_at()
    }

    fn tx_l4_checksum_offload(&self) -> bool {
        self.inner.tx_l4_checksum_offload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let mut w = PcapWriter::new(Vec::new(), LINKTYPE_ETHERNET).unwrap();
        w.write_packet(Instant::from_micros(2_000_003), &[1, 2, 3])
            .unwrap();
        let b = w.into_inner();
        assert_eq!(b.len(), 24 + 16 + 3);
        assert_eq!(&b[0..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 3);
        assert_eq!(&b[40..], &[1, 2, 3]);
    }
}
