//! Enrollment profiles built and signed per second, natively: the per-request work of
//! `POST /mdm/enroll/ade` beyond store reads and writes (plist of three payloads, CMS
//! SignedData with SHA-256 and an RSA-2048 signature, certificate chain included).
//!
//! `cargo bench -p mdm-core --bench profile_sign` (release profile). Optional argument:
//! seconds to run (default 3).

use std::time::{Duration, Instant};

use mdm_core::enroll::enrollment_profile::{
    ProfileParams, SigningIdentity, enrollment_profile_plist,
};
use mdm_crypto::{CertificateAuthority, CsrParams, IssueOptions, KeyPair};

fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let now = 1_800_000_000i64;
    let ca = CertificateAuthority::generate("Bench MDM CA", now).unwrap();
    let key = KeyPair::generate().unwrap();
    let csr = mdm_crypto::build_csr(&key, &CsrParams::new("Profile Signing")).unwrap();
    let csr = mdm_crypto::Csr::from_der(&csr).unwrap();
    let cert = ca.issue(&csr, now, &IssueOptions::default()).unwrap();
    let signer = SigningIdentity {
        key,
        cert,
        chain: vec![ca.ca_certificate().clone()],
    };
    let ca_der = ca.ca_certificate().der().to_vec();
    let build = |i: u64| {
        let udid = format!("00008030-{i:016X}");
        let plist = enrollment_profile_plist(&ProfileParams {
            server_url: "https://mdm.example.com",
            topic: "com.apple.mgmt.External.3f1c1a1e-2b7d-4a57-9c0e-5e1a3c2b9d10",
            challenge: "Zk2o8rWc3bq0J1y5n9mTqk7wA6sV4eP2dXhLfGuCiRo",
            udid: &udid,
            organization: Some("Example Org"),
            ca_der: Some(&ca_der),
            removal_disallowed: false,
            enrollment_mode: None,
            assigned_managed_apple_id: None,
        });
        signer.sign(&plist, now as u64).unwrap()
    };
    // Warm up.
    let size = build(0).len();
    let budget = Duration::from_secs(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        std::hint::black_box(build(n));
        n += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "enrollment profiles built and signed: {n} in {elapsed:.2} s = {:.0} profiles/s ({:.2} ms each, {size} bytes signed)",
        n as f64 / elapsed,
        elapsed * 1000.0 / n as f64
    );
}
