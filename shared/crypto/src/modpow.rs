//! `base^e mod n` for public exponents: the RSA operation of every signature check, the
//! largest single cost of verifying a CMS signature in WebAssembly (about 90 µs of 115;
//! `scripts/bench-verify.sh`).
//!
//! Montgomery multiplication in product-scanning form over short limbs (28 bits, or 26
//! for moduli above about 3,550 bits). A column's products are summed into 64 bits without
//! carrying: each is below 2^56 and a column has at most 2·L of them, so that the inner
//! loop is nothing but multiply-add. In WebAssembly it runs four limbs at a time with
//! SIMD (`i64x2.extmul_*_i32x4_u`, two 32×32→64-bit products per instruction); elsewhere
//! the same loop is plain Rust. The modulus needs no headroom: R = 2^(w·L) > 4n, so
//! products of inputs below 2n stay below 2n (no conditional subtraction per step,
//! one at the end).
//!
//! Only for public exponents and values: the time depends on the exponent's bits.

use rsa::BigUint;

/// Zero limbs after every operand, so that the last chunk of 4 of a column may read
/// past the end (the extra products are zero).
const PAD: usize = 4;

/// `base^exponent mod modulus` by left-to-right square-and-multiply.
pub(crate) fn public_modpow(base: &BigUint, exponent: &BigUint, modulus: &BigUint) -> BigUint {
    let Some(m) = Montgomery::new(modulus) else {
        // Even moduli (no RSA modulus is one), 1, and absurd sizes.
        return base.modpow(exponent, modulus);
    };
    let bits = exponent.bits();
    if bits == 0 {
        return BigUint::from(1u8) % modulus;
    }
    let e = exponent.to_bytes_le();
    let bit = |i: usize| e[i / 8] >> (i % 8) & 1 == 1;
    let x = m.enter(base);
    let x_rev = m.reversed(&x);
    let mut acc = x.clone();
    let (mut acc_rev, mut out, mut q) = (m.zeros(), m.zeros(), m.zeros());
    for i in (0..bits - 1).rev() {
        m.reverse_into(&acc, &mut acc_rev);
        m.mul(&acc, &acc_rev, &mut out, &mut q);
        std::mem::swap(&mut acc, &mut out);
        if bit(i) {
            m.mul(&acc, &x_rev, &mut out, &mut q);
            std::mem::swap(&mut acc, &mut out);
        }
    }
    m.leave(&acc)
}

/// Arithmetic modulo an odd `n` in Montgomery form, R = 2^(w·len). Operands are `len`
/// limbs of `w` bits, little-endian, followed by [`PAD`] zero limbs, with values below
/// 2n (not necessarily reduced).
struct Montgomery {
    modulus: BigUint,
    /// Significant bits of the modulus.
    bits: usize,
    /// Bits per limb: 28, or 26 when 28-bit columns could overflow 64 bits.
    w: u32,
    len: usize,
    n: Vec<u32>,
    /// `n` reversed (limb i at len − 1 − i), then padding.
    n_rev: Vec<u32>,
    /// −n⁻¹ mod 2^w.
    n0inv: u32,
}

impl Montgomery {
    fn new(modulus: &BigUint) -> Option<Montgomery> {
        let low = modulus.to_bytes_le();
        if low[0] & 1 == 0 || *modulus == BigUint::from(1u8) {
            return None;
        }
        // R > 4n needs w·len ≥ bits + 2. A column sums at most 2·len products below
        // 2^(2w), plus a carry below 2^(64−w): that must stay below 2^64.
        let (w, len) = [28u32, 26]
            .into_iter()
            .map(|w| (w, (modulus.bits() + 2).div_ceil(w as usize)))
            .find(|&(w, len)| (2 * len as u128) << (2 * w) < (1u128 << 64) - (1u128 << (64 - w)))?;
        let n0 = u32::from_le_bytes(std::array::from_fn(|i| low.get(i).copied().unwrap_or(0)));
        // Newton's iteration doubles the correct low bits of n⁻¹ mod 2^32 each round.
        let mut inv: u32 = 1;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        let mut m = Montgomery {
            modulus: modulus.clone(),
            bits: modulus.bits(),
            w,
            len,
            n: Vec::new(),
            n_rev: Vec::new(),
            n0inv: inv.wrapping_neg() & ((1 << w) - 1),
        };
        m.n = m.limbs(modulus);
        m.n_rev = m.reversed(&m.n);
        Some(m)
    }

    fn mask(&self) -> u32 {
        (1 << self.w) - 1
    }

    fn zeros(&self) -> Vec<u32> {
        vec![0; self.len + PAD]
    }

    /// `x` (below 2^(w·len)) as padded limbs.
    fn limbs(&self, x: &BigUint) -> Vec<u32> {
        let mut out = self.zeros();
        let (mut bits, mut have, mut k) = (0u64, 0u32, 0);
        for b in x.to_bytes_le() {
            bits |= (b as u64) << have;
            have += 8;
            while have >= self.w {
                out[k] = bits as u32 & self.mask();
                bits >>= self.w;
                have -= self.w;
                k += 1;
            }
        }
        if have > 0 {
            out[k] = bits as u32;
        }
        out
    }

    fn value(&self, limbs: &[u32]) -> BigUint {
        let mut bytes = Vec::with_capacity(self.len * 4);
        let (mut bits, mut have) = (0u64, 0u32);
        for &l in &limbs[..self.len] {
            bits |= (l as u64) << have;
            have += self.w;
            while have >= 8 {
                bytes.push(bits as u8);
                bits >>= 8;
                have -= 8;
            }
        }
        bytes.push(bits as u8);
        BigUint::from_bytes_le(&bytes)
    }

    fn reversed(&self, x: &[u32]) -> Vec<u32> {
        let mut out = self.zeros();
        self.reverse_into(x, &mut out);
        out
    }

    fn reverse_into(&self, x: &[u32], out: &mut [u32]) {
        for (o, l) in out[..self.len].iter_mut().zip(x[..self.len].iter().rev()) {
            *o = *l;
        }
    }

    /// x·R mod n, below 2n. For moduli of 64 bits and more, `len` times v ← v·2^w − q̂·n
    /// with the quotient q̂ estimated from the top 32 bits of n: a few µs, where a
    /// big-number division took most of the time of a multiplication chain's start.
    fn enter(&self, x: &BigUint) -> Vec<u32> {
        let x = x % &self.modulus;
        if self.bits < 64 {
            let shifted = x << (self.w as usize * self.len);
            return self.limbs(&(shifted % &self.modulus));
        }
        let (len, w, mask) = (self.len, self.w, self.mask() as i64);
        // With s = bits − 32, n_top = ⌊n/2^s⌋ + 1 lies in (2^31, 2^32], and for v < 2n·2^w
        // q̂ = ⌊⌊v/2^s⌋ / n_top⌋ is at most ⌊v/n⌋ and falls short of v/n by less than
        // 1 + (v/n)/2^31 + 2^−31 < 1.26: each step leaves v below 1.26n < 2n.
        let s = self.bits - 32;
        let n_top = self.bits_from(&self.n, s) + 1;
        let mut v = self.limbs(&x);
        for _ in 0..len {
            // v < 2n < 2^(w·len − 1), so v·2^w fits len + 1 limbs.
            v.copy_within(0..len, 1);
            v[0] = 0;
            let q = (self.bits_from(&v, s) / n_top) as i64;
            let mut borrow = 0i64;
            for (vj, nj) in v[..=len].iter_mut().zip(&self.n[..=len]) {
                let t = *vj as i64 - q * *nj as i64 - borrow;
                *vj = (t & mask) as u32;
                borrow = -(t >> w);
            }
            debug_assert!(borrow == 0 && v[len] == 0, "q̂ never exceeds the quotient");
        }
        v
    }

    /// ⌊v/2^s⌋ for v < 2^(s + 64), from limbs.
    fn bits_from(&self, v: &[u32], s: usize) -> u64 {
        let (i, shift) = (s / self.w as usize, s % self.w as usize);
        let window = v[i..i + 4].iter().enumerate().fold(0u128, |acc, (k, l)| {
            acc | (*l as u128) << (self.w as usize * k)
        });
        (window >> shift) as u64
    }

    /// x·R⁻¹ mod n, reduced: back from Montgomery form.
    fn leave(&self, x: &[u32]) -> BigUint {
        let mut one = self.zeros();
        one[self.len - 1] = 1; // reversed
        let (mut out, mut q) = (self.zeros(), self.zeros());
        self.mul(x, &one, &mut out, &mut q);
        let v = self.value(&out);
        if v >= self.modulus {
            v - &self.modulus
        } else {
            v
        }
    }

    /// `out = a·b·R⁻¹ mod n` (below 2n) for `a, b` below 2n, `b` given reversed
    /// (`b_rev`), `q` scratch. Column k of a·b + q·n is Σ aᵢ·b_(k−i) + Σ qᵢ·n_(k−i) over
    /// i in lo..=hi, with b_(k−i) at b_rev[i + len − 1 − k]; q_k is chosen when column k
    /// is reached so that its low w bits become zero, and the first `len` columns are
    /// shifted out. Every column sum stays below 2^64 (see [`Montgomery::new`]).
    #[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
    fn mul(&self, a: &[u32], b_rev: &[u32], out: &mut [u32], q: &mut [u32]) {
        let (len, w, mask) = (self.len, self.w, self.mask());
        assert!(
            [a.len(), b_rev.len(), out.len(), q.len(), self.n_rev.len()]
                .iter()
                .all(|&l| l == len + PAD)
        );
        q.fill(0);
        let mut acc = 0u64;
        for k in 0..2 * len - 1 {
            let (lo, hi) = (k.saturating_sub(len - 1), k.min(len - 1));
            let rev = lo + len - 1 - k;
            // Chunks of 4 may run past hi: there b_rev's and n_rev's padding (k < len),
            // or a's and q's (k ≥ len), make the products zero; so does q_k, not chosen
            // yet.
            acc += dot2(
                &a[lo..],
                &b_rev[rev..],
                &q[lo..],
                &self.n_rev[rev..],
                (hi - lo + 1).div_ceil(4),
            );
            if k < len {
                let qk = (acc as u32).wrapping_mul(self.n0inv) & mask;
                q[k] = qk;
                acc += qk as u64 * self.n[0] as u64;
            } else {
                out[k - len] = acc as u32 & mask;
            }
            acc >>= w;
        }
        // Below 2n < 2^(w·len): the carry fits the top limb.
        out[len - 1] = acc as u32;
    }
}

/// Σ x[i]·y[i] + Σ u[i]·v[i] for i < 4·chunks; every slice holds at least that many.
/// The caller keeps the sum below 2^64.
#[cfg(target_arch = "wasm32")]
#[target_feature(enable = "simd128")]
fn dot2(x: &[u32], y: &[u32], u: &[u32], v: &[u32], chunks: usize) -> u64 {
    use core::arch::wasm32::*;
    let n = 4 * chunks;
    assert!(x.len() >= n && y.len() >= n && u.len() >= n && v.len() >= n);
    let (mut s0, mut s1) = (u64x2_splat(0), u64x2_splat(0));
    for c in 0..chunks {
        // SAFETY: 4·c + 4 ≤ n, and each slice holds n limbs (asserted above); v128
        // loads need no alignment.
        let (vx, vy, vu, vv) = unsafe {
            (
                v128_load(x.as_ptr().add(4 * c) as *const v128),
                v128_load(y.as_ptr().add(4 * c) as *const v128),
                v128_load(u.as_ptr().add(4 * c) as *const v128),
                v128_load(v.as_ptr().add(4 * c) as *const v128),
            )
        };
        s0 = i64x2_add(s0, u64x2_extmul_low_u32x4(vx, vy));
        s1 = i64x2_add(s1, u64x2_extmul_high_u32x4(vx, vy));
        s0 = i64x2_add(s0, u64x2_extmul_low_u32x4(vu, vv));
        s1 = i64x2_add(s1, u64x2_extmul_high_u32x4(vu, vv));
    }
    let s = i64x2_add(s0, s1);
    u64x2_extract_lane::<0>(s) + u64x2_extract_lane::<1>(s)
}

#[cfg(not(target_arch = "wasm32"))]
fn dot2(x: &[u32], y: &[u32], u: &[u32], v: &[u32], chunks: usize) -> u64 {
    let n = 4 * chunks;
    let xy = x[..n]
        .iter()
        .zip(&y[..n])
        .map(|(a, b)| *a as u64 * *b as u64);
    let uv = u[..n]
        .iter()
        .zip(&v[..n])
        .map(|(a, b)| *a as u64 * *b as u64);
    xy.chain(uv).sum()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rsa::rand_core::{CryptoRng, RngCore};

    /// A seeded generator (splitmix64): reproducible keys and inputs, test use only.
    pub(crate) struct Seeded(pub(crate) u64);

    impl Seeded {
        /// Below `n` (> 0); the slight modulo bias does not matter to tests.
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }
    }

    impl RngCore for Seeded {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                let v = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl CryptoRng for Seeded {}

    pub(crate) fn bytes(rng: &mut Seeded, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        rng.fill_bytes(&mut v);
        v
    }

    #[test]
    fn montgomery_products_stay_below_2n_and_are_right() {
        let mut rng = Seeded(11);
        for round in 0..400 {
            // Up to 4,096 bits and a few beyond (26-bit limbs), some with a full top byte.
            let n_len = 1 + rng.below(if round % 10 == 0 { 600 } else { 300 });
            let mut n = bytes(&mut rng, n_len);
            n[n_len - 1] |= 1;
            if round % 2 == 0 {
                n[0] = 0xFF;
            }
            let n = BigUint::from_bytes_be(&n);
            let Some(m) = Montgomery::new(&n) else {
                assert_eq!(n, BigUint::from(1u8));
                continue;
            };
            assert_eq!(m.w, if n.bits() + 2 <= 127 * 28 { 28 } else { 26 });
            let r = BigUint::from(1u8) << (m.w as usize * m.len);
            assert!(r > &n * 4u8);
            let two_n_minus_1 = &n * 2u8 - 1u8;
            let random =
                |rng: &mut Seeded| BigUint::from_bytes_be(&bytes(rng, n_len + 1)) % &(&n * 2u8);
            let pairs = [
                (random(&mut rng), random(&mut rng)),
                (two_n_minus_1.clone(), two_n_minus_1.clone()),
                (two_n_minus_1.clone(), BigUint::from(1u8)),
                (BigUint::from(0u8), random(&mut rng)),
            ];
            for (a, b) in pairs {
                let (mut out, mut q) = (m.zeros(), m.zeros());
                m.mul(&m.limbs(&a), &m.reversed(&m.limbs(&b)), &mut out, &mut q);
                assert!(out[..m.len].iter().all(|l| *l <= m.mask()));
                assert!(out[m.len..].iter().all(|l| *l == 0), "padding untouched");
                let v = m.value(&out);
                assert!(v < &n * 2u8, "below 2n");
                assert_eq!((v * &r) % &n, &a * &b % &n, "a·b·R⁻¹");
            }
            for x in [
                random(&mut rng) % &n,
                BigUint::from(0u8),
                BigUint::from(1u8),
                &n - 1u8,
            ] {
                let entered = m.enter(&x);
                let v = m.value(&entered);
                assert!(v < &n * 2u8, "entered below 2n");
                assert_eq!(v % &n, (&x * &r) % &n, "x·R mod n");
                assert_eq!(m.leave(&entered), x, "in and out of Montgomery form");
            }
        }
    }

    #[test]
    fn public_modpow_is_modpow() {
        let mut rng = Seeded(7);
        let mut cases: Vec<(BigUint, BigUint)> = Vec::new();
        for _ in 0..300 {
            let n_len = 1 + rng.below(520);
            let mut n = bytes(&mut rng, n_len);
            n[n_len - 1] |= 1; // odd, as RSA moduli are
            if rng.below(4) == 0 {
                n[0] = 0xFF;
            }
            let base_len = 1 + rng.below(n_len + 8);
            let base = BigUint::from_bytes_be(&bytes(&mut rng, base_len));
            cases.push((BigUint::from_bytes_be(&n), base));
        }
        // Moduli of all-one bits, bases 0, 1 and n − 1.
        for bits in [
            1usize, 27, 28, 29, 31, 32, 33, 64, 1024, 2048, 3554, 3555, 4096,
        ] {
            let n = (BigUint::from(1u8) << bits) - BigUint::from(1u8);
            for base in [
                BigUint::from(0u8),
                BigUint::from(1u8),
                &n - BigUint::from(1u8),
            ] {
                cases.push((n.clone(), base));
            }
        }
        for (n, base) in cases {
            if n <= BigUint::from(1u8) {
                continue;
            }
            for e in [
                BigUint::from(0u8),
                BigUint::from(1u8),
                BigUint::from(2u8),
                BigUint::from(3u8),
                BigUint::from(65_537u32),
                BigUint::from(rng.next_u64() >> 31),
            ] {
                assert_eq!(
                    public_modpow(&base, &e, &n),
                    base.modpow(&e, &n),
                    "{base} ^ {e} mod {n}"
                );
            }
        }
    }
}
