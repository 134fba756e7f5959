//! Counters and rates, as `ipvsadm --stats` and `--rate` show them.

use std::ops::AddAssign;

/// Cumulative counters of a service, a real server, or the whole table
/// (the kernel's struct ip_vs_kstats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counters {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.conns += o.conns;
        self.inpkts += o.inpkts;
        self.outpkts += o.outpkts;
        self.inbytes += o.inbytes;
        self.outbytes += o.outbytes;
    }
}

/// Estimated rates per second, as the kernel reports them (already rounded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// The kernel's rate estimator (`ip_vs_est.c`): every 2 seconds it takes the
/// counter deltas, scales them (conns and packets by 2^10, bytes by 2^5, per
/// second: the 2 s delta is shifted left by 9 and 4) and folds them into an
/// exponentially weighted moving average with weight 1/4:
/// `avg += (rate - avg) >> 2` (arithmetic shift, so it rounds towards minus
/// infinity when falling). User space reads `(avg + 0x1FF) >> 10` for conns
/// and packets, `(avg + 0xF) >> 5` for bytes (`ip_vs_read_estimator()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Estimator {
    last: Counters,
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
    /// When the next 2 s tick is due.
    next_tick: Time,
}

use crate::time::Time;

impl Estimator {
    /// The estimation period.
    pub const PERIOD_MS: u64 = 2000;

    /// An estimator started at `now` with the counters as they are (the
    /// kernel starts a service's or server's estimator with zeroed counters;
    /// pass `Counters::default()` for that). The first tick is at `now + 2 s`.
    pub fn new(now: Time, counters: &Counters) -> Estimator {
        Estimator {
            last: *counters,
            next_tick: Time(now.0 + Self::PERIOD_MS),
            ..Estimator::default()
        }
    }

    /// Runs the 2 s ticks due at or before `now`, reading `counters` as their
    /// value at the first of them. Call at least every 2 s for exact kernel
    /// behaviour: if several ticks are due at once, the later ones see no
    /// new traffic (the model has no counters for the time in between).
    pub fn sample(&mut self, now: Time, counters: &Counters) {
        while self.next_tick <= now {
            self.tick(counters);
            self.next_tick = Time(self.next_tick.0 + Self::PERIOD_MS);
        }
    }

    /// One estimation step with the given cumulative counters.
    pub fn tick(&mut self, c: &Counters) {
        fn fold(avg: &mut i64, last: &mut u64, now: u64, shift: u32) {
            let rate = (now.wrapping_sub(*last) << shift) as i64;
            *last = now;
            *avg += (rate - *avg) >> 2;
        }
        fold(&mut self.cps, &mut self.last.conns, c.conns, 9);
        fold(&mut self.inpps, &mut self.last.inpkts, c.inpkts, 9);
        fold(&mut self.outpps, &mut self.last.outpkts, c.outpkts, 9);
        fold(&mut self.inbps, &mut self.last.inbytes, c.inbytes, 4);
        fold(&mut self.outbps, &mut self.last.outbytes, c.outbytes, 4);
    }

    /// `ip_vs_zero_estimator()` (`ipvsadm -Z`): rates to 0, deltas restart
    /// from the current counters.
    pub fn zero(&mut self, counters: &Counters) {
        self.last = *counters;
        self.cps = 0;
        self.inpps = 0;
        self.outpps = 0;
        self.inbps = 0;
        self.outbps = 0;
    }

    /// The rates as the kernel reports them (`ip_vs_read_estimator()`).
    pub fn rates(&self) -> Rates {
        fn read(avg: i64, round: i64, shift: u32) -> u64 {
            ((avg + round) >> shift).max(0) as u64
        }
        Rates {
            cps: read(self.cps, 0x1FF, 10),
            inpps: read(self.inpps, 0x1FF, 10),
            outpps: read(self.outpps, 0x1FF, 10),
            inbps: read(self.inbps, 0xF, 5),
            outbps: read(self.outbps, 0xF, 5),
        }
    }

    /// The internal scaled averages (cps, inpps, outpps, inbps, outbps).
    pub fn raw(&self) -> [i64; 5] {
        [self.cps, self.inpps, self.outpps, self.inbps, self.outbps]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A constant feed of 100 conn/s, 1000 in-packets/s, 1000 bytes/s.
    /// Each 2 s tick sees 200 conns: rate = 200 << 9 = 102400 (= 100 << 10).
    /// cps: 0 -> 0 + (102400 - 0) >> 2 = 25600 -> reads (25600 + 511) >> 10 = 25
    ///      -> 25600 + 76800 >> 2 = 44800 -> 44 (44800 + 511 = 45311, / 1024 = 44.2)
    ///      -> 44800 + 57600 >> 2 = 59200 -> 58 (59711 / 1024 = 58.3)
    ///      -> 59200 + 43200 >> 2 = 70000 -> 68 (70511 / 1024 = 68.9)
    ///      -> 70000 + 32400 >> 2 = 78100 -> 76 (78611 / 1024 = 76.8)
    /// Bytes: 2000 per tick, rate = 2000 << 4 = 32000 (= 1000 << 5);
    /// inbps: 8000 -> (8000 + 15) >> 5 = 250; 14000 -> 437; 18500 -> 578.
    /// The average stops moving once (102400 - avg) >> 2 == 0, i.e. at
    /// 102397, which reads (102397 + 511) >> 10 = 100.
    #[test]
    fn constant_feed_converges() {
        let mut c = Counters::default();
        let mut e = Estimator::new(Time::ZERO, &c);
        let mut got = Vec::new();
        let mut bps = Vec::new();
        let mut pps = Vec::new();
        for k in 1..=5u64 {
            c.conns += 200;
            c.inpkts += 2000;
            c.inbytes += 2000;
            e.sample(Time(k * 2000), &c);
            got.push(e.rates().cps);
            bps.push(e.rates().inbps);
            pps.push(e.rates().inpps);
        }
        assert_eq!(got, [25, 44, 58, 68, 76]);
        assert_eq!(e.raw()[0], 78100);
        assert_eq!(&bps[..3], &[250, 437, 578]);
        // 1000 pkt/s: rate 2000 << 9 = 1024000; same EWMA, reads 250, 437, ...
        assert_eq!(pps, [250, 437, 578, 684, 763]);
        for k in 6..=200u64 {
            c.conns += 200;
            c.inbytes += 2000;
            e.sample(Time(k * 2000), &c);
        }
        assert_eq!(e.raw()[0], 102397);
        assert_eq!(e.rates().cps, 100);
        assert_eq!(e.rates().inbps, 1000);
        assert_eq!(e.rates().outpps, 0);
    }

    #[test]
    fn ticks_only_every_two_seconds() {
        let mut c = Counters::default();
        let mut e = Estimator::new(Time::ZERO, &c);
        c.conns = 200;
        e.sample(Time(1999), &c);
        assert_eq!(e.raw()[0], 0);
        e.sample(Time(2000), &c);
        assert_eq!(e.raw()[0], 25600);
        // Decay after traffic stops: 25600 + (0 - 25600) >> 2 = 19200.
        e.sample(Time(4000), &c);
        assert_eq!(e.raw()[0], 19200);
        e.zero(&c);
        assert_eq!(e.rates(), Rates::default());
    }
}
