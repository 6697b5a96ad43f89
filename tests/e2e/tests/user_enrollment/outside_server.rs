//! A server the test did not start, driven as `bench-polls --server` drives it: with only
//! the admin key, a benchmark device enrolls and is answered.

use super::*;

/// What `bench-polls --server` does with a server it did not start: with only the admin
/// key (no Apple service, no Apple CA, no push certificate but the `apns_topic` variable), a
/// benchmark user enrolls an iPhone account-driven, and its signed Idle is answered; without
/// a push topic the server's own reason comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_elsewhere_takes_a_benchmark_device_through_its_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let app = mdm_e2e::App::start_with(
        dir.path(),
        vec![(
            "apns_topic".into(),
            "com.apple.mgmt.External.5f7c1a2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b".into(),
        )],
    )
    .await
    .unwrap();
    let e = mdm_e2e::external::enroll_device(app.addr, mdm_e2e::ADMIN_KEY)
        .await
        .expect("enrolled through the admin API");
    let idle = e.device.signed_idle().unwrap();
    let (_, path) = mdm_devicesim::http::split_url(&idle.url).unwrap();
    let (s, _, body) = app
        .raw(
            Method::PUT,
            path,
            &[
                (
                    "content-type".into(),
                    "application/x-apple-aspen-mdm".into(),
                ),
                ("mdm-signature".into(), idle.signature.clone().unwrap()),
            ],
            idle.body.clone(),
        )
        .await
        .unwrap();
    assert_eq!((s, body.len()), (StatusCode::OK, 0), "the signed Idle");
    let (s, u) = app
        .admin(Method::GET, &format!("/api/v1/users/{}", e.username), None)
        .await;
    assert_eq!(
        (s, &u["groups"][0]),
        (StatusCode::OK, &json!(e.group)),
        "{u}"
    );
    // A second run beside the first: its own group, at another priority.
    let again = mdm_e2e::external::enroll_device(app.addr, mdm_e2e::ADMIN_KEY).await;
    assert!(again.is_ok(), "{:?}", again.err());
    // A wrong key is refused before anything is created.
    let wrong = mdm_e2e::external::enroll_device(app.addr, "not-the-key").await;
    let err = format!("{:#}", wrong.err().expect("a wrong admin key"));
    assert!(err.contains("401"), "{err}");
    app.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let app = mdm_e2e::App::start(dir.path()).await.unwrap();
    let err = mdm_e2e::external::enroll_device(app.addr, mdm_e2e::ADMIN_KEY)
        .await
        .err()
        .expect("no push topic, no enrollment");
    assert!(format!("{err:#}").contains("push"), "{err:#}");
    app.shutdown().await;
}
