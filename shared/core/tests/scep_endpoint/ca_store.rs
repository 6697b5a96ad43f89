//! The CA in the store: created once under concurrent first use, a stalled creation taken
//! over after its lease, keys sealed with the storage key.

use super::*;

type SysEnv = Env<MemoryBackend, NoHttp, SystemClock, MapVariables>;

#[test]
fn the_ca_is_created_once_under_concurrent_first_use() {
    for defects in [Defects::spin_sqlite(), Defects::redis()] {
        let e: SysEnv = Env {
            store: Store::new(MemoryBackend::with_defects(defects)),
            http: NoHttp,
            clock: SystemClock,
            vars: MapVariables::new([(
                "storage_key",
                "storage-key-for-scep-tests-0123456789abcdef",
            )]),
        };
        let certs: Vec<Certificate> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        block_on(ca::authority(&e))
                            .unwrap()
                            .ca_certificate()
                            .clone()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(certs.iter().all(|c| *c == certs[0]), "{defects:?}: one CA");
        assert_eq!(
            block_on(e.store.get(SCEP_CA_CERT_KEY)).unwrap().unwrap(),
            certs[0].der()
        );
        assert_eq!(
            block_on(ca::authority(&e)).unwrap().ca_certificate(),
            &certs[0]
        );
    }
}

#[test]
fn a_stalled_creation_is_taken_over_after_the_lease() {
    let e = env();
    // Attempt 0 was claimed by a request that then died.
    let claim = mdm_kv::CounterKey::new("scep:ca-claim:0").unwrap();
    assert!(block_on(e.store.claim(&claim)).unwrap());
    // Requests meanwhile wait, then say "busy" (503, retry).
    let r = scep(&e, Method::GET, "operation=GetCACert", vec![]);
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{}", text(&r));
    // After the lease, the next request takes over and creates the CA.
    e.clock
        .advance(std::time::Duration::from_secs(ca::LEASE_SECS));
    let (ca_cert, _) = get_ca_cert(&e);
    assert_eq!(block_on(ca::ca_certificate(&e)).unwrap(), ca_cert);
}

#[test]
fn keys_are_sealed_and_need_the_storage_key() {
    let mut e = env();
    let authority = block_on(ca::authority(&e)).unwrap();
    let dump = dump(&e);
    let b64 = base64::engine::general_purpose::STANDARD;
    for key in [authority.ca_key(), authority.ra_key()] {
        let pkcs8 = key.to_pkcs8_der().unwrap();
        let b64_key = b64.encode(&pkcs8[..]);
        // A distinctive 64-byte piece of the key (the private exponent area).
        let piece = &pkcs8[pkcs8.len() / 2..pkcs8.len() / 2 + 64];
        for (k, v) in &dump {
            assert!(!v.windows(piece.len()).any(|w| w == piece), "{k}: raw key");
            let s = String::from_utf8_lossy(v);
            assert!(!s.contains("PRIVATE KEY"), "{k}");
            assert!(!s.contains(&b64_key[100..160]), "{k}: base64 key");
        }
    }
    // Certificates are stored in clear; the keys open only with the same storage_key.
    e.vars = MapVariables::new([("storage_key", "another-storage-key-0123456789abcdef")]);
    let err = block_on(ca::authority(&e)).unwrap_err();
    assert!(matches!(err, ca::ScepSetupError::Unsealable(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("another-storage-key-0123456789abcdef"));
    let r = scep(&e, Method::GET, "operation=GetCACert", vec![]);
    assert_eq!(r.status(), StatusCode::OK, "certificates need no key");
    e.vars = MapVariables::new([("admin_api_key", "x")]);
    assert!(matches!(
        block_on(ca::authority(&e)).unwrap_err(),
        ca::ScepSetupError::Misconfigured(_)
    ));
}
