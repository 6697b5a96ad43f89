//! The push request as APNs expects it, and how APNs answers are classified.

use super::*;

#[test]
fn request_is_exactly_what_apns_expects() {
    let req = push::apns::build_request(
        "https://api.push.apple.com/",
        &push_data(&TOKEN.to_uppercase()),
        T0,
        Some("0f2b6e6a-0000-4000-8000-000000000001"),
    )
    .unwrap();
    assert_eq!(req.method(), http::Method::POST);
    assert_eq!(
        req.uri().to_string(),
        format!("https://api.push.apple.com/3/device/{TOKEN}")
    );
    let h = |n: &str| req.headers().get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(h("apns-topic"), TOPIC);
    assert_eq!(h("apns-push-type"), "mdm");
    assert_eq!(h("apns-priority"), "10");
    assert_eq!(h("apns-expiration"), (T0 + EXPIRATION_SECS).to_string());
    assert_eq!(h("apns-id"), "0f2b6e6a-0000-4000-8000-000000000001");
    assert_eq!(req.body(), format!(r#"{{"mdm":"{MAGIC}"}}"#).as_bytes());

    // A PushMagic needing JSON escapes stays valid JSON.
    let mut odd = push_data(TOKEN);
    odd.push_magic = "a\"b\\c".into();
    let req = push::apns::build_request("https://x", &odd, T0, None).unwrap();
    assert_eq!(req.body(), br#"{"mdm":"a\"b\\c"}"#);
    assert!(req.headers().get("apns-id").is_none());

    for bad in ["", "abc", "zz", "0g"] {
        let e = push::apns::build_request("https://x", &push_data(bad), T0, None).unwrap_err();
        assert!(!e.to_string().contains(TOKEN));
    }
    let mut no_topic = push_data(TOKEN);
    no_topic.topic.clear();
    assert!(push::apns::build_request("https://x", &no_topic, T0, None).is_err());
}

#[test]
fn apns_ids_are_v4_uuids() {
    let a = push::apns::new_apns_id();
    assert_eq!(a.len(), 36);
    assert_eq!(&a[14..15], "4");
    assert_ne!(a, push::apns::new_apns_id());
}

#[test]
fn base_url_defaults_to_production() {
    let none = MapVariables::default();
    assert_eq!(
        block_on(push::apns::base_url(&none)),
        "https://api.push.apple.com"
    );
    let set = MapVariables::new([("apns_base_url", " https://api.sandbox.push.apple.com/ ")]);
    assert_eq!(
        block_on(push::apns::base_url(&set)),
        "https://api.sandbox.push.apple.com"
    );
}

#[test]
fn redaction_keeps_only_a_prefix() {
    assert_eq!(push::apns::redact(TOKEN), "6e3f0a1b…");
    assert_eq!(push::apns::redact("short"), "…");
    assert_ne!(
        push::apns::token_fingerprint(TOKEN),
        push::apns::token_fingerprint("00")
    );
    assert_eq!(
        push::apns::token_fingerprint(TOKEN),
        push::apns::token_fingerprint(&TOKEN.to_uppercase())
    );
}

#[test]
fn answers_are_classified() {
    let at = UNIX_EPOCH + Duration::from_secs(T0);
    let c = |r: Reply| push::outcome::classify(&r, at);
    assert_eq!(
        c(Ok(ok())),
        Verdict::Delivered {
            apns_id: Some("0F2B6E6A-0000-4000-8000-000000000001".into())
        }
    );
    let gone = Ok(Response::builder()
        .status(410)
        .body(br#"{"reason":"Unregistered","timestamp":1799999999000}"#.to_vec())
        .unwrap());
    assert_eq!(
        c(gone),
        Verdict::Unreachable {
            status: 410,
            reason: "Unregistered".into(),
            apns_timestamp: Some(1_799_999_999_000)
        }
    );
    assert!(matches!(
        c(err(410, "ExpiredToken")),
        Verdict::Unreachable { .. }
    ));
    assert!(matches!(
        c(err(400, "BadDeviceToken")),
        Verdict::Unreachable { status: 400, .. }
    ));
    for reason in ["BadCertificate", "BadCertificateEnvironment", "Forbidden"] {
        assert_eq!(
            c(err(403, reason)),
            Verdict::Certificate {
                status: 403,
                reason: reason.into()
            }
        );
    }
    assert_eq!(
        c(err_retry_after(429, "TooManyRequests", "120")),
        Verdict::Retry {
            status: Some(429),
            reason: "TooManyRequests".into(),
            retry_after: Some(Duration::from_secs(120)),
            tls: false
        }
    );
    let date = "Fri, 15 Jan 2027 08:00:00 GMT";
    match c(err_retry_after(503, "ServiceUnavailable", date)) {
        Verdict::Retry { retry_after, .. } => {
            let want = mdm_core::time::parse_rfc3339("2027-01-15T08:00:00Z").unwrap() as u64 - T0;
            assert_eq!(retry_after, Some(Duration::from_secs(want)));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c(err(500, "InternalServerError")),
        Verdict::Retry {
            status: Some(500),
            ..
        }
    ));
    assert!(matches!(c(err(503, "Shutdown")), Verdict::Retry { .. }));
    // Without a JSON body the status text stands in for the reason.
    assert_eq!(
        c(Ok(Response::builder()
            .status(502)
            .body(b"<html>".to_vec())
            .unwrap())),
        Verdict::Retry {
            status: Some(502),
            reason: "BadGateway".into(),
            retry_after: None,
            tls: false
        }
    );
    for reason in [
        "BadTopic",
        "TopicDisallowed",
        "MissingTopic",
        "DeviceTokenNotForTopic",
        "BadExpirationDate",
    ] {
        assert_eq!(
            c(err(400, reason)),
            Verdict::Failed {
                status: 400,
                reason: reason.into()
            }
        );
    }
    assert!(matches!(
        c(err(413, "PayloadTooLarge")),
        Verdict::Failed { status: 413, .. }
    ));
    assert!(matches!(
        c(Err(TransportError("connection refused".into()))),
        Verdict::Retry {
            status: None,
            tls: false,
            ..
        }
    ));
    assert!(matches!(
        c(Err(TransportError(
            "TlsAlertReceived(certificate required)".into()
        ))),
        Verdict::Retry { tls: true, .. }
    ));
}

#[test]
fn backoff_doubles_with_jitter_up_to_an_hour() {
    assert_eq!(push::send::backoff_bounds(1), (15, 30));
    assert_eq!(push::send::backoff_bounds(2), (30, 60));
    assert_eq!(push::send::backoff_bounds(7), (960, 1920));
    assert_eq!(push::send::backoff_bounds(8), (1800, 3600));
    assert_eq!(push::send::backoff_bounds(500), (1800, 3600));
    assert_eq!(push::send::retry_delay(1, None, 0.0), 15);
    assert_eq!(push::send::retry_delay(1, None, 1.0), 30);
    // Retry-After wins when it asks for longer, not when shorter; capped at 6 h.
    assert_eq!(
        push::send::retry_delay(1, Some(Duration::from_secs(600)), 0.5),
        600
    );
    assert_eq!(
        push::send::retry_delay(3, Some(Duration::from_secs(5)), 1.0),
        120
    );
    assert_eq!(
        push::send::retry_delay(1, Some(Duration::from_secs(86_400)), 0.0),
        6 * 3600
    );
}
