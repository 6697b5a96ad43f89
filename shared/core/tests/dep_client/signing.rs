//! OAuth 1.0a: known answers, percent-encoding and URI normalisation, and the `/session`
//! Authorization header in Apple's format.

use super::*;

#[test]
fn oauth_known_answers() {
    // RFC 5849 §1.2 (photos.example.net).
    let base = oauth::signature_base_string(
        "GET",
        "http://photos.example.net/photos?file=vacation.jpg&size=original",
        &[
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            ("oauth_token", "nnch734d00sl2jdk"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131202"),
            ("oauth_nonce", "chapoH"),
        ],
    )
    .unwrap();
    assert_eq!(
        base,
        "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3DchapoH%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131202%26oauth_token%3Dnnch734d00sl2jdk%26size%3Doriginal"
    );
    assert_eq!(
        oauth::sign(&base, "kd94hf93k423kf44", "pfkkdhi9sl3r4s00"),
        "MdpQcU8iPSUjWoN/UDMsK2sui9I="
    );

    // Twitter's "Creating a signature" example (query + form body parameters).
    let base = oauth::signature_base_string(
        "post",
        "https://api.twitter.com/1.1/statuses/update.json?include_entities=true",
        &[
            (
                "status",
                "Hello Ladies + Gentlemen, a signed OAuth request!",
            ),
            ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
            ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1318622958"),
            (
                "oauth_token",
                "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            ),
            ("oauth_version", "1.0"),
        ],
    )
    .unwrap();
    assert!(base.starts_with("POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26oauth_consumer_key"));
    assert!(base.ends_with("%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521"));
    assert_eq!(
        oauth::sign(
            &base,
            "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
            "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"
        ),
        "hCtSmYh+iHYCEqBWrE7C7hYmtUk="
    );

    // RFC 5849 §3.4.1.1: repeated names, encoded query, empty values, '+' in the body.
    let base = oauth::signature_base_string(
        "POST",
        "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b",
        &[
            ("c2", ""),
            ("a3", "2 q"),
            ("oauth_consumer_key", "9djdj82h48djs9d2"),
            ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "7d8f3e4a"),
        ],
    )
    .unwrap();
    assert_eq!(
        base,
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
    );
}

#[test]
fn oauth_encoding_and_uri_normalisation() {
    assert_eq!(oauth::percent_encode("AZaz09-._~"), "AZaz09-._~");
    assert_eq!(
        oauth::percent_encode("Ladies + Gentlemen/=&"),
        "Ladies%20%2B%20Gentlemen%2F%3D%26"
    );
    assert_eq!(oauth::percent_encode("☃"), "%E2%98%83");
    assert_eq!(
        oauth::percent_decode("a%2Bb+c", true).as_deref(),
        Some("a+b c")
    );
    assert_eq!(oauth::percent_decode("%zz", false), None);
    assert_eq!(
        oauth::base_string_uri("HTTPS://MdmEnrollment.Apple.com:443/session").unwrap(),
        "https://mdmenrollment.apple.com/session"
    );
    assert_eq!(
        oauth::base_string_uri("http://Example.com:80/r?x=1#f").unwrap(),
        "http://example.com/r"
    );
    assert_eq!(
        oauth::base_string_uri("http://127.0.0.1:8080/dep/session").unwrap(),
        "http://127.0.0.1:8080/dep/session"
    );
    assert!(oauth::base_string_uri("/session").is_err());
}

#[test]
fn oauth_header_is_apples_format_and_verifies() {
    let c = creds();
    let url = format!("{BASE}/session");
    let header = oauth::authorization_header(&c, "GET", &url, T0, "0123456789abcdef").unwrap();
    assert!(header.starts_with(&format!(
        "OAuth realm=\"ADM\", oauth_consumer_key=\"{}\", oauth_token=\"{}\", oauth_signature_method=\"HMAC-SHA1\", oauth_timestamp=\"{T0}\", oauth_nonce=\"0123456789abcdef\", oauth_version=\"1.0\", oauth_signature=\"",
        c.consumer_key, c.access_token
    )));
    // Independent recomputation.
    let params = oauth::parse_authorization(&header).unwrap();
    let sig = &params
        .iter()
        .find(|(k, _)| k == "oauth_signature")
        .unwrap()
        .1;
    assert!(header.ends_with(&format!("oauth_signature=\"{}\"", enc(sig))));
    let normalized = params
        .iter()
        .filter(|(k, _)| k != "realm" && k != "oauth_signature")
        .map(|(k, v)| (enc(k), enc(v)))
        .collect::<BTreeMap<_, _>>()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!("GET&{}&{}", enc(&url), enc(&normalized));
    assert_eq!(
        *sig,
        hmac_sha1_b64(
            &format!("{}&{}", enc(&c.consumer_secret), enc(&c.access_secret)),
            &base
        )
    );

    assert!(oauth::verify_authorization(
        &header,
        "GET",
        &url,
        &c.consumer_secret,
        &c.access_secret
    ));
    assert!(!oauth::verify_authorization(
        &header,
        "GET",
        &url,
        "CS_wrong",
        &c.access_secret
    ));
    assert!(!oauth::verify_authorization(
        &header,
        "POST",
        &url,
        &c.consumer_secret,
        &c.access_secret
    ));
    let tampered = header.replace(&format!("\"{T0}\""), &format!("\"{}\"", T0 + 1));
    assert!(!oauth::verify_authorization(
        &tampered,
        "GET",
        &url,
        &c.consumer_secret,
        &c.access_secret
    ));
    let plaintext = header.replace("HMAC-SHA1", "PLAINTEXT");
    assert!(!oauth::verify_authorization(
        &plaintext,
        "GET",
        &url,
        &c.consumer_secret,
        &c.access_secret
    ));
    let duplicated = format!("{header}, oauth_nonce=\"x\"");
    assert!(!oauth::verify_authorization(
        &duplicated,
        "GET",
        &url,
        &c.consumer_secret,
        &c.access_secret
    ));
    assert!(oauth::parse_authorization("Bearer abc").is_none());
}
