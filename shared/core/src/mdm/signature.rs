//! `Mdm-Signature`: a detached CMS SignedData over the exact request body, signed by the
//! device's identity (certificate embedded). Verified here: the body's digest equals the
//! signed `messageDigest` attribute and the RSA signature over the signed attributes is
//! the signer certificate's. Which CA issued that certificate is checked by the caller
//! (the SCEP CA), as is the binding of the certificate to an enrollment: the certificate
//! itself is not covered by the device's signature, so only a certificate that chains to
//! our CA and whose hash is bound to the enrollment may be trusted.

use base64::Engine;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::{Decode, Encode};
use rsa::BigUint;
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use sha2::Digest;
use x509_cert::Certificate;

const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const ID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const SHA1: &str = "1.3.14.3.2.26";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureError(pub String);

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mdm-Signature rejected: {}", self.0)
    }
}

impl std::error::Error for SignatureError {}

fn fail(m: impl Into<String>) -> SignatureError {
    SignatureError(m.into())
}

/// The verified signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub certificate_der: Vec<u8>,
    /// Lowercase hex SHA-256 of the certificate: the enrollment binding key.
    pub cert_hash: String,
}

/// Verifies the `Mdm-Signature` header value (base64) against the raw body.
pub fn verify(header: &str, body: &[u8]) -> Result<Signer, SignatureError> {
    let compact: String = header.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| fail("header is not base64"))?;
    let der = crate::ber::to_der(&raw).map_err(|e| fail(e.to_string()))?;
    let ci = ContentInfo::from_der(&der).map_err(|e| fail(format!("not CMS: {e}")))?;
    if ci.content_type.to_string() != ID_SIGNED_DATA {
        return Err(fail("not a SignedData"));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| fail(format!("SignedData: {e}")))?;
    let signers: Vec<_> = sd.signer_infos.0.iter().collect();
    let [signer] = signers.as_slice() else {
        return Err(fail("exactly one signer expected"));
    };
    let SignerIdentifier::IssuerAndSerialNumber(sid) = &signer.sid else {
        return Err(fail(
            "signer must be identified by issuer and serial number",
        ));
    };
    let cert = sd
        .certificates
        .as_ref()
        .into_iter()
        .flat_map(|set| set.0.iter())
        .find_map(|c| match c {
            cms::cert::CertificateChoices::Certificate(c)
                if c.tbs_certificate.issuer == sid.issuer
                    && c.tbs_certificate.serial_number == sid.serial_number =>
            {
                Some(c.clone())
            }
            _ => None,
        })
        .ok_or_else(|| fail("signer certificate not included"))?;

    let digest_oid = signer.digest_alg.oid.to_string();
    let body_digest = match digest_oid.as_str() {
        SHA1 => sha1::Sha1::digest(body).to_vec(),
        SHA256 => sha2::Sha256::digest(body).to_vec(),
        other => return Err(fail(format!("unsupported digest {other}"))),
    };
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| fail("signed attributes missing"))?;
    let md = attrs
        .iter()
        .find(|a| a.oid.to_string() == ID_MESSAGE_DIGEST)
        .and_then(|a| a.values.get(0))
        .and_then(|v| v.decode_as::<der::asn1::OctetString>().ok())
        .ok_or_else(|| fail("messageDigest attribute missing"))?;
    if md.as_bytes() != body_digest.as_slice() {
        return Err(fail("body does not match the signed digest"));
    }
    let signed = attrs
        .to_der()
        .map_err(|e| fail(format!("signed attributes: {e}")))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| fail(e.to_string()))?;
    let key =
        rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|_| fail("signer key is not RSA"))?;
    let sig = signer.signature.as_bytes();
    let ok = match digest_oid.as_str() {
        SHA1 => pkcs1v15_verify::<sha1::Sha1>(&key, &signed, sig),
        _ => pkcs1v15_verify::<sha2::Sha256>(&key, &signed, sig),
    };
    if !ok {
        return Err(fail("signature does not verify"));
    }
    let certificate_der = cert.to_der().map_err(|e| fail(e.to_string()))?;
    let cert_hash = hex::encode(sha2::Sha256::digest(&certificate_der));
    Ok(Signer {
        certificate_der,
        cert_hash,
    })
}

/// RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2) of `sig` over `message` hashed with
/// `D`: what `rsa::pkcs1v15::VerifyingKey::verify` checks, computed faster.
///
/// `rsa` raises the signature to the public exponent with `BigUint::modpow`, which walks
/// every bit of the exponent's 64-bit words in 4-bit windows, as a private exponent needs
/// (the same work whatever its value): about 100 Montgomery multiplications for
/// e = 65537, where square-and-multiply needs 17. Public exponent and signature are no
/// secrets, so the shortcut leaks nothing. In WebAssembly (no 64×64→128-bit multiply)
/// those multiplications made the two verifications of every device request most of its
/// cost. `key` was built by `rsa`, which bounds the exponent (at most 2^33 − 1) and the
/// modulus (at most 4096 bits), so a hostile certificate cannot make this loop long.
pub fn pkcs1v15_verify<D>(key: &rsa::RsaPublicKey, message: &[u8], sig: &[u8]) -> bool
where
    D: Digest + der::oid::AssociatedOid,
{
    let padding = Pkcs1v15Sign::new::<D>();
    let hashed = D::digest(message);
    let k = key.size();
    let t_len = padding.prefix.len() + hashed.len();
    if sig.len() != k || k < t_len + 11 {
        return false;
    }
    let s = BigUint::from_bytes_be(sig);
    if &s >= key.n() {
        return false;
    }
    let m = public_modpow(&s, key.e(), key.n()).to_bytes_be();
    if m.len() > k {
        return false;
    }
    // EM = 0x00 || 0x01 || 0xFF... || 0x00 || DigestInfo prefix || H, compared whole.
    let mut expected = vec![0xFF; k];
    expected[0] = 0x00;
    expected[1] = 0x01;
    expected[k - t_len - 1] = 0x00;
    expected[k - t_len..k - hashed.len()].copy_from_slice(&padding.prefix);
    expected[k - hashed.len()..].copy_from_slice(&hashed);
    // `m` lacks EM's leading zero bytes.
    expected[..k - m.len()].iter().all(|b| *b == 0) && expected[k - m.len()..] == m[..]
}

/// `base^exponent mod modulus` by left-to-right square-and-multiply, for public
/// exponents only (its time depends on the exponent's bits), in Montgomery form with
/// 32-bit limbs: WebAssembly multiplies 32-bit numbers into 64 bits natively, where the
/// 64-bit limbs of `BigUint` need a 128-bit product (a call to `__multi3`), and Montgomery
/// reduction needs no division.
fn public_modpow(base: &BigUint, exponent: &BigUint, modulus: &BigUint) -> BigUint {
    let Some(m) = Montgomery::new(modulus) else {
        // Even moduli are no RSA moduli; nothing here gives one, but stay correct.
        return base.modpow(exponent, modulus);
    };
    let bits = exponent.bits();
    if bits == 0 {
        return BigUint::from(1u8) % modulus;
    }
    let e = exponent.to_bytes_le();
    let bit = |i: usize| e[i / 8] >> (i % 8) & 1 == 1;
    let x = m.enter(&(base % modulus));
    let mut acc = x.clone();
    let mut tmp = vec![0; m.n.len()];
    let mut scratch = Vec::new();
    for i in (0..bits - 1).rev() {
        m.sqr(&acc, &mut tmp, &mut scratch);
        std::mem::swap(&mut acc, &mut tmp);
        if bit(i) {
            m.mul(&acc, &x, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
        }
    }
    m.leave(&acc)
}

/// Arithmetic modulo an odd `n` in Montgomery form (R = 2^(32·limbs)), little-endian
/// 32-bit limbs.
struct Montgomery {
    n: Vec<u32>,
    /// −n⁻¹ mod 2^32.
    n0inv: u32,
    /// R² mod n.
    rr: Vec<u32>,
}

impl Montgomery {
    fn new(modulus: &BigUint) -> Option<Montgomery> {
        let n = limbs(modulus, 0);
        if n.first().is_none_or(|l| l & 1 == 0) {
            return None;
        }
        // Newton's iteration doubles the correct low bits of n⁻¹ mod 2^32 each round.
        let mut inv: u32 = 1;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n[0].wrapping_mul(inv)));
        }
        let rr = (BigUint::from(1u8) << (64 * n.len())) % modulus;
        Some(Montgomery {
            rr: limbs(&rr, n.len()),
            n0inv: inv.wrapping_neg(),
            n,
        })
    }

    /// x·R mod n, for x < n.
    fn enter(&self, x: &BigUint) -> Vec<u32> {
        let mut out = vec![0; self.n.len()];
        self.mul(&limbs(x, self.n.len()), &self.rr, &mut out);
        out
    }

    /// x·R⁻¹ mod n: back from Montgomery form.
    fn leave(&self, x: &[u32]) -> BigUint {
        let mut one = vec![0; self.n.len()];
        one[0] = 1;
        let mut out = vec![0; self.n.len()];
        self.mul(x, &one, &mut out);
        let bytes: Vec<u8> = out.iter().flat_map(|l| l.to_le_bytes()).collect();
        BigUint::from_bytes_le(&bytes)
    }

    /// `out = a·b·R⁻¹ mod n` for `a, b < n`: per limb of `b`, t = (t + a·bᵢ + m·n) / 2^32
    /// with m chosen so that the division is exact (both products in one pass).
    fn mul(&self, a: &[u32], b: &[u32], out: &mut [u32]) {
        let n = &self.n[..];
        let len = n.len();
        // Equal lengths up front let the compiler drop the bounds checks in the loop.
        assert!(a.len() == len && b.len() == len && out.len() == len);
        let mut t = vec![0u32; len + 1];
        for &bi in b {
            let s = t[0] as u64 + a[0] as u64 * bi as u64;
            let m = (s as u32).wrapping_mul(self.n0inv);
            let r = (s as u32) as u64 + m as u64 * n[0] as u64; // low half is 0
            let (mut c1, mut c2) = (s >> 32, r >> 32);
            for j in 1..len {
                let s = t[j] as u64 + a[j] as u64 * bi as u64 + c1;
                c1 = s >> 32;
                let r = (s as u32) as u64 + m as u64 * n[j] as u64 + c2;
                c2 = r >> 32;
                t[j - 1] = r as u32;
            }
            let s = t[len] as u64 + c1 + c2;
            t[len - 1] = s as u32;
            t[len] = (s >> 32) as u32;
        }
        self.reduce_once(&t, out);
    }

    /// `out = a·a·R⁻¹ mod n` for `a < n`, with about 3/4 of [`Montgomery::mul`]'s limb
    /// products: the square is computed first (each cross product aᵢ·aⱼ once, then
    /// doubled, plus the diagonal aᵢ²), then reduced. `scratch` is reused between calls.
    /// Public exponents are almost all squarings.
    fn sqr(&self, a: &[u32], out: &mut [u32], scratch: &mut Vec<u32>) {
        let n = &self.n[..];
        let len = n.len();
        assert!(a.len() == len && out.len() == len);
        scratch.clear();
        scratch.resize(2 * len + 1, 0);
        let t = &mut scratch[..2 * len + 1];
        // Cross products: t = Σ_{i<j} aᵢ·aⱼ·2^(32(i+j)). Row i ends in limb i + len, which
        // no earlier row reached.
        for i in 0..len {
            let ai = a[i] as u64;
            let mut c = 0u64;
            for j in i + 1..len {
                let s = t[i + j] as u64 + ai * a[j] as u64 + c;
                t[i + j] = s as u32;
                c = s >> 32;
            }
            t[i + len] = c as u32;
        }
        // t = 2t + Σ aᵢ²·2^(64i); a² < R², so nothing carries out of limb 2·len − 1.
        let (mut shifted, mut c) = (0u32, 0u64);
        for i in 0..len {
            let sq = a[i] as u64 * a[i] as u64;
            let lo = t[2 * i];
            let s = ((lo << 1) | shifted) as u64 + (sq & 0xFFFF_FFFF) + c;
            t[2 * i] = s as u32;
            c = s >> 32;
            shifted = lo >> 31;
            let hi = t[2 * i + 1];
            let s = ((hi << 1) | shifted) as u64 + (sq >> 32) + c;
            t[2 * i + 1] = s as u32;
            c = s >> 32;
            shifted = hi >> 31;
        }
        // Montgomery reduction: per low limb i, add m·n·2^(32i) with m making limb i zero;
        // the carry out of limb i + len is deferred to the next row's last limb.
        let mut extra = 0u64;
        for i in 0..len {
            let m = t[i].wrapping_mul(self.n0inv) as u64;
            let mut c = 0u64;
            for j in 0..len {
                let s = t[i + j] as u64 + m * n[j] as u64 + c;
                t[i + j] = s as u32;
                c = s >> 32;
            }
            let s = t[i + len] as u64 + c + extra;
            t[i + len] = s as u32;
            extra = s >> 32;
        }
        t[2 * len] = extra as u32;
        self.reduce_once(&t[len..], out);
    }

    /// `out = t mod n` for `t < 2n` (`len + 1` limbs): subtracts n once if t ≥ n.
    fn reduce_once(&self, t: &[u32], out: &mut [u32]) {
        let n = &self.n[..];
        let len = n.len();
        if t[len] != 0 || !lt(&t[..len], n) {
            let mut borrow = 0i64;
            for j in 0..len {
                let d = t[j] as i64 - n[j] as i64 - borrow;
                out[j] = d as u32;
                borrow = (d < 0) as i64;
            }
        } else {
            out.copy_from_slice(&t[..len]);
        }
    }
}

/// `a < b` for little-endian limbs of the same length.
fn lt(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `x` as little-endian 32-bit limbs, at least `len` of them.
fn limbs(x: &BigUint, len: usize) -> Vec<u32> {
    let mut bytes = x.to_bytes_le();
    bytes.resize(bytes.len().next_multiple_of(4).max(4 * len), 0);
    bytes
        .chunks(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Parses a certificate (DER), for callers that check issuers.
pub fn certificate(der: &[u8]) -> Option<Certificate> {
    Certificate::from_der(der).ok()
}

/// Store key of our SCEP CA certificate (DER, or PEM), written by
/// [`crate::scep::ca::authority`]. While it is absent the device endpoints refuse every
/// identity ([`crate::checkin::authenticate_device`]).
pub const SCEP_CA_CERT_KEY: &str = "scep:ca-cert";

const SHA1_WITH_RSA: &str = "1.2.840.113549.1.1.5";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
const SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";

/// The trust-anchor check of a device identity: `identity_der` must have been issued (and
/// signed) by one of `ca_certs` (DER). The `Mdm-Signature` only proves possession of the
/// key of the certificate embedded in it; this proves that certificate is ours.
///
/// An empty `ca_certs` refuses nothing here; the device endpoints refuse before calling
/// this when no CA exists ([`crate::checkin::authenticate_device`]).
///
/// Checked: the issuer name equals the CA's subject and the certificate's signature
/// verifies with the CA's RSA key (SHA-1/256/384/512). Validity dates are not checked:
/// devices keep signing with an identity until they renew it.
pub fn require_issued_by(identity_der: &[u8], ca_certs: &[Vec<u8>]) -> Result<(), SignatureError> {
    if ca_certs.is_empty() {
        return Ok(());
    }
    let leaf = certificate(identity_der).ok_or_else(|| fail("identity certificate unreadable"))?;
    let tbs = leaf
        .tbs_certificate
        .to_der()
        .map_err(|e| fail(format!("identity certificate: {e}")))?;
    let sig = leaf
        .signature
        .as_bytes()
        .ok_or_else(|| fail("identity certificate signature malformed"))?;
    let alg = leaf.signature_algorithm.oid.to_string();
    for ca_der in ca_certs {
        let Some(ca) = certificate(ca_der) else {
            continue;
        };
        if ca.tbs_certificate.subject != leaf.tbs_certificate.issuer {
            continue;
        }
        let Ok(spki) = ca.tbs_certificate.subject_public_key_info.to_der() else {
            continue;
        };
        let Ok(key) = rsa::RsaPublicKey::from_public_key_der(&spki) else {
            continue;
        };
        let ok = match alg.as_str() {
            SHA1_WITH_RSA => pkcs1v15_verify::<sha1::Sha1>(&key, &tbs, sig),
            SHA256_WITH_RSA => pkcs1v15_verify::<sha2::Sha256>(&key, &tbs, sig),
            SHA384_WITH_RSA => pkcs1v15_verify::<sha2::Sha384>(&key, &tbs, sig),
            SHA512_WITH_RSA => pkcs1v15_verify::<sha2::Sha512>(&key, &tbs, sig),
            other => return Err(fail(format!("unsupported certificate signature {other}"))),
        };
        if ok {
            return Ok(());
        }
    }
    Err(fail("identity certificate was not issued by our SCEP CA"))
}

/// CA certificates from the store value at [`SCEP_CA_CERT_KEY`]: DER, or one or more PEM
/// `CERTIFICATE` blocks.
pub fn ca_certs_from_store_value(raw: &[u8]) -> Vec<Vec<u8>> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return vec![raw.to_vec()];
    };
    if !text.contains("-----BEGIN") {
        return vec![raw.to_vec()];
    }
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN CERTIFICATE") {
            body = Some(String::new());
        } else if line.starts_with("-----END") {
            if let Some(b) = body.take()
                && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b)
            {
                out.push(der);
            }
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
    use rsa::rand_core::{CryptoRng, RngCore};
    use rsa::signature::{SignatureEncoding, Signer, Verifier};

    /// A seeded generator (splitmix64): reproducible keys and inputs, test use only.
    struct Seeded(u64);

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

    fn bytes(rng: &mut Seeded, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        rng.fill_bytes(&mut v);
        v
    }

    /// What `rsa`'s own verifier says.
    fn reference<D>(key: &rsa::RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool
    where
        D: Digest + der::oid::AssociatedOid,
    {
        Signature::try_from(sig)
            .is_ok_and(|s| VerifyingKey::<D>::new(key.clone()).verify(msg, &s).is_ok())
    }

    fn agree<D>(key: &rsa::RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool
    where
        D: Digest + der::oid::AssociatedOid,
    {
        let ours = pkcs1v15_verify::<D>(key, msg, sig);
        assert_eq!(ours, reference::<D>(key, msg, sig), "{} bytes", sig.len());
        ours
    }

    fn check_key<D>(rng: &mut Seeded, key: &rsa::RsaPrivateKey)
    where
        D: Digest + der::oid::AssociatedOid,
    {
        let public = key.to_public_key();
        let signer = SigningKey::<D>::new(key.clone());
        for _ in 0..4 {
            let len = (rng.next_u32() % 300) as usize;
            let msg = bytes(rng, len);
            let sig = signer.sign(&msg).to_vec();
            assert!(agree::<D>(&public, &msg, &sig), "a good signature");
            // Any flipped bit of signature or message.
            let mut bad = sig.clone();
            let i = rng.next_u32() as usize % (bad.len() * 8);
            bad[i / 8] ^= 1 << (i % 8);
            assert!(!agree::<D>(&public, &msg, &bad));
            let mut other = msg.clone();
            other.push(rng.next_u32() as u8);
            assert!(!agree::<D>(&public, &other, &sig));
            // Wrong lengths, zero, one, the modulus itself and beyond.
            let mut longer = vec![0];
            longer.extend_from_slice(&sig);
            assert!(!agree::<D>(&public, &msg, &longer));
            assert!(!agree::<D>(&public, &msg, &sig[1..]));
            let k = public.size();
            assert!(!agree::<D>(&public, &msg, &vec![0; k]));
            let mut one = vec![0; k];
            one[k - 1] = 1;
            assert!(!agree::<D>(&public, &msg, &one));
            assert!(!agree::<D>(&public, &msg, &public.n().to_bytes_be()));
            assert!(!agree::<D>(&public, &msg, &vec![0xFF; k]));
            // Signed with another digest.
            let sha1 = SigningKey::<sha1::Sha1>::new(key.clone())
                .sign(&msg)
                .to_vec();
            if std::any::type_name::<D>() != std::any::type_name::<sha1::Sha1>() {
                assert!(!agree::<D>(&public, &msg, &sha1));
            }
        }
    }

    #[test]
    fn verification_agrees_with_the_rsa_crate() {
        let mut rng = Seeded(20240611);
        let exps = [3u64, 17, 65_537, 0x1_0000_0001];
        for (i, bits) in [1024usize, 1024, 1024, 2048].into_iter().enumerate() {
            let key = rsa::RsaPrivateKey::new_with_exp(&mut rng, bits, &BigUint::from(exps[i]))
                .expect("test key");
            check_key::<sha1::Sha1>(&mut rng, &key);
            check_key::<sha2::Sha256>(&mut rng, &key);
            check_key::<sha2::Sha384>(&mut rng, &key);
            check_key::<sha2::Sha512>(&mut rng, &key);
        }
    }

    #[test]
    fn montgomery_products_are_reduced() {
        let mut rng = Seeded(11);
        let value = |l: &[u32]| {
            BigUint::from_bytes_le(&l.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>())
        };
        for round in 0..400 {
            let n_len = 4 * (1 + (rng.next_u32() % 70) as usize);
            let mut n = bytes(&mut rng, n_len);
            n[n_len - 1] |= 1;
            if round % 2 == 0 {
                n[0] = 0xFF;
            }
            let n = BigUint::from_bytes_be(&n);
            let m = Montgomery::new(&n).expect("odd");
            let (a, b) = (
                BigUint::from_bytes_be(&bytes(&mut rng, n_len)) % &n,
                BigUint::from_bytes_be(&bytes(&mut rng, n_len)) % &n,
            );
            let mut out = vec![0; m.n.len()];
            m.mul(&limbs(&a, m.n.len()), &limbs(&b, m.n.len()), &mut out);
            let r = value(&out);
            assert!(r < n, "reduced below n");
            assert_eq!((r << (32 * m.n.len())) % &n, &a * &b % &n, "a·b·R⁻¹");
            // Squaring, also of n − 1 (every cross product at its largest).
            let mut scratch = Vec::new();
            for x in [a.clone(), &n - BigUint::from(1u8)] {
                m.sqr(&limbs(&x, m.n.len()), &mut out, &mut scratch);
                let mut by_mul = vec![0; m.n.len()];
                m.mul(&limbs(&x, m.n.len()), &limbs(&x, m.n.len()), &mut by_mul);
                assert_eq!(out, by_mul, "sqr = mul(x, x)");
                let r = value(&out);
                assert!(r < n, "square reduced below n");
                assert_eq!((r << (32 * m.n.len())) % &n, &x * &x % &n, "x²·R⁻¹");
            }
        }
    }

    #[test]
    fn public_modpow_is_modpow() {
        let mut rng = Seeded(7);
        let mut cases: Vec<(BigUint, BigUint)> = Vec::new();
        for _ in 0..300 {
            let n_len = 1 + (rng.next_u32() % 300) as usize;
            let mut n = bytes(&mut rng, n_len);
            n[n_len - 1] |= 1; // odd, as RSA moduli are
            if rng.next_u32().is_multiple_of(4) {
                n[0] = 0xFF; // a full top limb: intermediate sums reach 2n
            }
            let base_len = 1 + (rng.next_u32() % (n_len as u32 + 8)) as usize;
            let base = BigUint::from_bytes_be(&bytes(&mut rng, base_len));
            cases.push((BigUint::from_bytes_be(&n), base));
        }
        // Moduli of all-one bits, bases 0, 1 and n − 1.
        for bits in [1usize, 31, 32, 33, 64, 1024, 2048] {
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
