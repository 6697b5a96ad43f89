//! rand_core 0.6 RNG over getrandom 0.3: the RustCrypto crates want a `CryptoRngCore`, and
//! getrandom 0.3 (unlike the 0.2 behind `rand_core/getrandom`) reaches wasi:random on
//! wasm32-wasip2.

use rand_core::{CryptoRng, RngCore};

pub(crate) struct SysRng;

impl RngCore for SysRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // No supported runtime lacks a randomness source, and nothing secure can proceed
        // without one.
        getrandom::fill(dest).expect("platform randomness unavailable");
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        getrandom::fill(dest).map_err(|_| {
            let code = std::num::NonZeroU32::new(rand_core::Error::CUSTOM_START)
                .expect("CUSTOM_START is non-zero");
            rand_core::Error::from(code)
        })
    }
}

impl CryptoRng for SysRng {}

/// `n` random bytes.
pub(crate) fn bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    SysRng.fill_bytes(&mut b);
    b
}
