//! Randomness as an input. The kernel's twos scheduler draws random numbers;
//! the model takes them from a caller-supplied source so runs are repeatable.

/// A source of random 32-bit numbers.
pub trait Rng {
    fn next_u32(&mut self) -> u32;

    /// A number in `0..n` the way the kernel's get_random_u32_below() maps a
    /// 32-bit draw: `(draw * n) >> 32` (n > 0).
    fn below(&mut self, n: u32) -> u32 {
        debug_assert!(n > 0);
        ((self.next_u32() as u64 * n as u64) >> 32) as u32
    }
}

/// SplitMix64: small, fast, deterministic for a given seed.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Rng for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

/// Replays a fixed list of draws (cycling); handy for pinning twos in tests.
#[derive(Clone, Debug)]
pub struct Fixed {
    draws: Vec<u32>,
    pos: usize,
}

impl Fixed {
    pub fn new(draws: Vec<u32>) -> Fixed {
        assert!(!draws.is_empty(), "Fixed needs at least one draw");
        Fixed { draws, pos: 0 }
    }
}

impl Rng for Fixed {
    fn next_u32(&mut self) -> u32 {
        let v = self.draws[self.pos % self.draws.len()];
        self.pos += 1;
        v
    }
}
