//! Randomness from the platform (wasi:random under Spin, the OS natively).

/// `n` random bytes. Panics only if the platform has no randomness source, which no
/// supported runtime lacks (and nothing secure can proceed without one).
pub fn bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("platform randomness unavailable");
    buf
}

/// A random identifier of `n` bytes as lowercase hex.
pub fn hex_id(n: usize) -> String {
    hex::encode(bytes(n))
}
