//! `Mdm-Signature` verifications per second: what every device request to ServerURL and
//! CheckInURL pays before the store is touched (base64, CMS SignedData parse, digest, an
//! RSA-2048 public-key operation), with a device-like signature (SHA-256, signingTime,
//! the signer's certificate included, detached).
//!
//! Natively: `cargo bench -p mdm-core --bench verify_signature`. In WebAssembly, as the
//! components run it: `./scripts/bench-verify.sh` (builds this bench for wasm32-wasip2
//! and runs it in Wasmtime with the host's engine settings). Optional argument: seconds
//! to run (default 3).

use std::time::{Duration, Instant};

use base64::Engine as _;
use mdm_crypto::{KeyPair, SignOptions};

fn main() {
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    let now = 1_800_000_000i64;
    let key = KeyPair::generate().unwrap();
    let cert =
        mdm_crypto::self_signed_certificate(&key, "00008030-000A1D2C3E4F5061", now, now + 86_400)
            .unwrap();
    let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Status</key>
	<string>Idle</string>
	<key>UDID</key>
	<string>00008030-000A1D2C3E4F5061</string>
</dict>
</plist>
"#;
    let opts = SignOptions {
        detached: true,
        signing_time_unix: Some(now),
        ..SignOptions::default()
    };
    let der = mdm_crypto::sign_data(body, &key, &cert, &[], &opts).unwrap();
    let header = base64::engine::general_purpose::STANDARD.encode(&der);
    let ber_header = base64::engine::general_purpose::STANDARD.encode(indefinite_outside(&der));
    let expected = mdm_core::mdm::signature::verify(&header, body).unwrap();
    let budget = Duration::from_secs_f64(secs);
    let rate = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < budget {
            f();
            n += 1;
        }
        let elapsed = start.elapsed().as_secs_f64();
        format!(
            "{n} in {elapsed:.2} s = {:.0}/s ({:.1} µs each)",
            n as f64 / elapsed,
            elapsed * 1e6 / n as f64
        )
    };
    println!(
        "Mdm-Signature verified (RSA-2048, SHA-256, {} bytes of header): {}",
        header.len(),
        rate(&mut || {
            let signer = mdm_core::mdm::signature::verify(std::hint::black_box(&header), body);
            assert_eq!(signer.as_ref(), Ok(&expected));
        })
    );
    println!(
        "  the same in BER, as devices send it (converted to DER first): {}",
        rate(&mut || {
            let signer = mdm_core::mdm::signature::verify(std::hint::black_box(&ber_header), body);
            assert_eq!(signer.as_ref(), Ok(&expected));
        })
    );
    // The RSA operation alone: PKCS#1 v1.5 over a message as long as signed attributes.
    let public = {
        use rsa::pkcs8::DecodePublicKey;
        rsa::RsaPublicKey::from_public_key_der(&key.public_key_der().unwrap()).unwrap()
    };
    let message = [0x31u8; 105];
    let signature = key.sign_sha256(&message).unwrap();
    println!(
        "  of which the RSA-2048 public-key verification: {}",
        rate(&mut || {
            assert!(mdm_crypto::DigestAlgorithm::Sha256.verify_rsa(
                &public,
                std::hint::black_box(&message),
                &signature
            ));
        })
    );
}

/// The ContentInfo SEQUENCE re-encoded with an indefinite length: BER, so the verifier
/// converts the whole message to DER (devices use indefinite lengths further in too).
fn indefinite_outside(der: &[u8]) -> Vec<u8> {
    let skip = match der[1] {
        n if n < 0x80 => 2,
        n => 2 + (n & 0x7f) as usize,
    };
    let mut ber = vec![0x30, 0x80];
    ber.extend_from_slice(&der[skip..]);
    ber.extend_from_slice(&[0, 0]);
    ber
}
