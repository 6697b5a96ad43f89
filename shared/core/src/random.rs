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

/// A random (version 4) UUID, uppercase as Apple writes them (CommandUUID,
/// PayloadUUID); `apns-id` takes it lowercased.
pub fn uuid_v4() -> String {
    let mut b = bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode_upper(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
