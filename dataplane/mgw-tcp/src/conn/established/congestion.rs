//! Congestion control: CUBIC (RFC 9438, the default) and NewReno (RFC 5681 / RFC 6582).
//!
//! Windows are in bytes. The loss-recovery machinery (fast retransmit, SACK recovery) lives in
//! `sender.rs`; this file only answers "how big may the window be".

use mgw_core::time::Instant;

/// Which algorithm grows the congestion window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CongestionAlgorithm {
    /// RFC 5681 slow start and congestion avoidance.
    NewReno,
    /// RFC 9438 CUBIC.
    #[default]
    Cubic,
}

/// RFC 9438 §4.6: β_cubic.
const BETA_CUBIC: f64 = 0.7;
/// RFC 9438 §5: C.
const C_CUBIC: f64 = 0.4;

/// Congestion state of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Congestion {
    pub algo: CongestionAlgorithm,
    pub cwnd: u32,
    pub ssthresh: u32,
    /// Bytes acknowledged towards the next 1-MSS increase in NewReno congestion avoidance.
    bytes_acked: u32,
    /// CUBIC: window before the last reduction, in segments.
    w_max: f32,
    /// CUBIC: time to get back to `w_max`, seconds.
    k: f32,
    /// CUBIC: the Reno-friendly estimate, in segments.
    w_est: f32,
    /// CUBIC: start of the current congestion-avoidance epoch (0 = none yet).
    epoch_start_ns: u64,
}

impl Congestion {
    /// RFC 6928 initial window: min(10*MSS, max(2*MSS, 14600)).
    pub fn new(algo: CongestionAlgorithm, mss: u32) -> Self {
        Congestion {
            algo,
            cwnd: (10 * mss).min((2 * mss).max(14_600)),
            ssthresh: u32::MAX,
            bytes_acked: 0,
            w_max: 0.0,
            k: 0.0,
            w_est: 0.0,
            epoch_start_ns: 0,
        }
    }

    /// New data acknowledged outside loss recovery.
    pub fn on_ack(&mut self, acked: u32, mss: u32, now: Instant, srtt_us: u32) {
        if self.cwnd < self.ssthresh {
            // RFC 5681 §3.1 slow start, with RFC 3465 byte counting limited to 2*SMSS per ACK.
            self.cwnd = self.cwnd.saturating_add(acked.min(2 * mss));
            return;
        }
        match self.algo {
            CongestionAlgorithm::NewReno => self.reno_avoid(acked, mss),
            CongestionAlgorithm::Cubic => self.cubic_avoid(acked, mss, now, srtt_us),
        }
    }

    fn reno_avoid(&mut self, acked: u32, mss: u32) {
        // RFC 5681 §3.1 eq. 3 in its byte-counting form: one MSS per cwnd of data acked.
        self.bytes_acked = self.bytes_acked.saturating_add(acked);
        if self.bytes_acked >= self.cwnd {
            self.bytes_acked -= self.cwnd;
            self.cwnd = self.cwnd.saturating_add(mss);
        }
    }

    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    fn cubic_avoid(&mut self, acked: u32, mss: u32, now: Instant, srtt_us: u32) {
        let mssf = mss as f32;
        let cwnd_seg = self.cwnd as f32 / mssf;
        if self.epoch_start_ns == 0 {
            // RFC 9438 §4.2: a new epoch starts at the first ACK in congestion avoidance.
            self.epoch_start_ns = now.as_nanos().max(1);
            if self.w_max < cwnd_seg {
                self.w_max = cwnd_seg;
                self.k = 0.0;
            }
            self.w_est = cwnd_seg;
        }
        let t = now.as_nanos().saturating_sub(self.epoch_start_ns) as f32 / 1e9;
        let rtt = srtt_us as f32 / 1e6;
        // RFC 9438 §4.3: the Reno-friendly window grows by α_cubic per RTT.
        let alpha = 3.0 * (1.0 - BETA_CUBIC as f32) / (1.0 + BETA_CUBIC as f32);
        self.w_est += alpha * (acked as f32 / mssf) / cwnd_seg;
        let w_cubic = |t: f32| C_CUBIC as f32 * (t - self.k).powi(3) + self.w_max;
        if w_cubic(t) < self.w_est {
            self.cwnd = (self.w_est * mssf) as u32;
            return;
        }
        // RFC 9438 §4.4/§4.5: aim for W_cubic one RTT ahead, capped at 1.5 cwnd.
        let target = w_cubic(t + rtt).clamp(cwnd_seg, 1.5 * cwnd_seg);
        let inc = (target - cwnd_seg) / cwnd_seg * (acked as f32);
        self.cwnd = self.cwnd.saturating_add(inc as u32);
    }

    /// Loss detected by duplicate ACKs or SACK: sets ssthresh (RFC 5681 eq. 4; RFC 9438 §4.6).
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    pub fn on_loss(&mut self, flight: u32, mss: u32) {
        match self.algo {
            CongestionAlgorithm::NewReno => {
                self.ssthresh = (flight / 2).max(2 * mss);
            }
            CongestionAlgorithm::Cubic => {
                let cwnd_seg = self.cwnd as f32 / mss as f32;
                // RFC 9438 §4.7 fast convergence.
                self.w_max = if cwnd_seg < self.w_max {
                    cwnd_seg * (1.0 + BETA_CUBIC as f32) / 2.0
                } else {
                    cwnd_seg
                };
                self.k = (self.w_max * (1.0 - BETA_CUBIC as f32) / C_CUBIC as f32).cbrt();
                self.ssthresh = ((self.cwnd as f32 * BETA_CUBIC as f32) as u32).max(2 * mss);
                self.epoch_start_ns = 0;
            }
        }
        self.bytes_acked = 0;
    }

    /// Retransmission timeout: RFC 5681 eq. 4 and a loss window of one segment.
    pub fn on_rto(&mut self, flight: u32, mss: u32) {
        self.on_loss(flight, mss);
        self.cwnd = mss;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_avoidance_newreno() {
        let mut c = Congestion::new(CongestionAlgorithm::NewReno, 1000);
        assert_eq!(c.cwnd, 10_000);
        c.on_ack(1000, 1000, Instant::ZERO, 10_000);
        assert_eq!(c.cwnd, 11_000);
        c.on_loss(20_000, 1000);
        assert_eq!(c.ssthresh, 10_000);
        c.cwnd = c.ssthresh;
        for _ in 0..10 {
            c.on_ack(1000, 1000, Instant::ZERO, 10_000);
        }
        assert_eq!(c.cwnd, 11_000);
        c.on_rto(11_000, 1000);
        assert_eq!(c.cwnd, 1000);
        assert_eq!(c.ssthresh, 5_500);
    }

    #[test]
    fn cubic_reduces_by_beta_and_regrows() {
        let mut c = Congestion::new(CongestionAlgorithm::Cubic, 1000);
        c.cwnd = 100_000;
        c.on_loss(100_000, 1000);
        assert_eq!(c.ssthresh, 70_000);
        c.cwnd = c.ssthresh;
        let mut now = Instant::from_millis(1);
        for _ in 0..20_000 {
            now += core::time::Duration::from_millis(1);
            c.on_ack(1000, 1000, now, 20_000);
        }
        // After a long epoch the window is back above W_max.
        assert!(c.cwnd > 100_000, "cwnd {}", c.cwnd);
    }
}
