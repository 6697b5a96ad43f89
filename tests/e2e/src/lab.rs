//! A zero-touch lab for end-to-end tests and benchmarks: the real components on the local host, Apple's
//! Device Assignment API (`tests/depsim`) with a connected and synced server token and an
//! enrollment profile, APNs (`tests/apnssim`) reached through the runtime config's
//! `[[client_tls]]` push certificate, a fake Apple device CA as `apple_device_ca`, and
//! simulated devices (`tests/devicesim`) that enroll the way Setup Assistant does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mdm_apnssim::ApnsSim;
use mdm_depsim::{RunningSim, SimConfig, Simulator};
use mdm_devicesim::{Device, DeviceKind, FakeAppleCa, Http, HyperHttp, SharedKeys};
use tokio::sync::Semaphore;

use crate::{App, Method, SYNC_KEY, StatusCode};
use serde_json::{Value, json};

/// What the profile and every URL the server hands out say (`server_url`; Apple takes
/// only https profile URLs); devices reach the app's plain-HTTP address whatever the
/// URL's host and scheme, as through a TLS-terminating proxy ([`HyperHttp::to`]).
pub const SERVER_URL: &str = "https://mdm.e2e.test";

/// Which push certificate the runtime config gives the components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushCert {
    /// Issued by the CA apnssim trusts.
    Trusted,
    /// Same shape, from a CA apnssim does not trust.
    Untrusted,
}

/// The simulated kind and OS version of a device of Apple's `device_family` (`iPhone`,
/// `iPad`, `Mac`; anything else simulates as an iPhone).
pub fn device_kind(family: &str) -> (DeviceKind, &'static str) {
    match family {
        "iPad" => (DeviceKind::Ipad, "17.4"),
        "Mac" => (DeviceKind::Mac, "14.4"),
        _ => (DeviceKind::Iphone, "17.4"),
    }
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub dep: RunningSim,
    pub apns: ApnsSim,
    pub app: App,
    pub apple: FakeAppleCa,
    pub token: u64,
    pub profile: u64,
    /// The variables the app was started with (besides the kit's keys) and its runtime
    /// config: what another host process serving the same app needs.
    pub vars: Vec<(String, String)>,
    pub runtime_config: PathBuf,
}

/// `[[client_tls]]` for the APNs host, for the components that push.
pub fn runtime_config(dir: &Path, apns: &ApnsSim, push: PushCert) -> PathBuf {
    let files = apns.write_files(&dir.join("push")).expect("push files");
    let (cert, key) = match push {
        PushCert::Trusted => (files.cert, files.key),
        PushCert::Untrusted => (files.untrusted_cert, files.untrusted_key),
    };
    let text = format!(
        "[[client_tls]]\ncomponent_ids = [\"admin\", \"sync\", \"checkin\"]\nhosts = [\"127.0.0.1\"]\n\
         client_cert_file = {:?}\nclient_private_key_file = {:?}\nca_roots_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string(),
        files.ca.display().to_string(),
    );
    let path = dir.join("runtime-config.toml");
    std::fs::write(&path, text).expect("runtime config");
    path
}

impl Lab {
    /// depsim with `devices` devices, all synced into one token; an iOS profile (awaiting
    /// DeviceConfigured) that nothing is assigned to yet.
    pub async fn start(devices: u64, push: PushCert) -> Lab {
        Self::start_with(devices, push, mdm_apnssim::SimConfig::default()).await
    }

    /// [`Lab::start`] with apnssim configured (e.g. TLS 1.2 only).
    pub async fn start_with(devices: u64, push: PushCert, apns: mdm_apnssim::SimConfig) -> Lab {
        Self::start_inner(devices, push, apns, true, Vec::new()).await
    }

    /// [`Lab::start`] with the store on Redis (`redis_url`, see [`crate::redis`]).
    pub async fn start_on_redis(devices: u64, push: PushCert, redis_url: &str) -> Lab {
        let vars = vec![("redis_url".to_owned(), redis_url.to_owned())];
        Self::start_inner(devices, push, Default::default(), true, vars).await
    }

    /// Like [`Lab::start`], but nothing synced yet: the profile exists, the token's
    /// inventory is empty (e.g. to make the profile the default before the first sync).
    pub async fn start_unsynced(devices: u64, push: PushCert) -> Lab {
        Self::start_inner(
            devices,
            push,
            mdm_apnssim::SimConfig::default(),
            false,
            Vec::new(),
        )
        .await
    }

    async fn start_inner(
        devices: u64,
        push: PushCert,
        apns: mdm_apnssim::SimConfig,
        sync: bool,
        extra: Vec<(String, String)>,
    ) -> Lab {
        let dep = Simulator::start(SimConfig::new(devices, 21)).expect("depsim starts");
        let apns = ApnsSim::start_with(apns).expect("apnssim starts");
        let apple = FakeAppleCa::generate().expect("fake Apple CA");
        let dir = tempfile::tempdir().unwrap();
        let rc = runtime_config(dir.path(), &apns, push);
        let mut vars = vec![
            ("dep_base_url".to_owned(), dep.base_url()),
            ("apns_base_url".to_owned(), apns.base_url()),
            ("apns_topic".to_owned(), apns.topic().to_owned()),
            ("apple_device_ca".to_owned(), apple.cert_pem()),
            ("server_url".to_owned(), SERVER_URL.to_owned()),
        ];
        vars.extend(extra);
        let app = App::start_with_config(&dir.path().join("state"), vars.clone(), Some(rc.clone()))
            .await
            .expect("app starts");
        let token = crate::dep::connect_token(&app, &dep, "Lab").await;
        if sync {
            let (s, b) = app
                .admin(Method::POST, &format!("/api/v1/tokens/{token}/sync"), None)
                .await;
            assert!(s == StatusCode::OK || s == StatusCode::ACCEPTED, "{s} {b}");
            crate::dep::tick_until_idle(&app, token, 20).await;
        }
        let (s, p) = app
            .admin(
                Method::POST,
                &format!("/api/v1/tokens/{token}/profiles"),
                Some(json!({
                    "name": "Zero-touch iPhones",
                    "platform": "ios",
                    "user_affinity": "without_user",
                    "await_device_configured": true,
                })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        let profile = p["id"].as_u64().expect("profile id");
        Lab {
            dir,
            dep,
            apns,
            app,
            apple,
            token,
            profile,
            vars,
            runtime_config: rc,
        }
    }

    /// The token's inventory record of `serial` (as the admin API shows it).
    pub async fn inventory_device(&self, serial: &str) -> Value {
        let (s, d) = self
            .app
            .admin(
                Method::GET,
                &format!("/api/v1/tokens/{}/devices/{serial}", self.token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{d}");
        d
    }

    /// Apple's UUID of one of our profiles.
    pub async fn apple_uuid(&self, profile: u64) -> String {
        let (s, p) = self
            .app
            .admin(
                Method::GET,
                &format!("/api/v1/tokens/{}/profiles/{profile}", self.token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{p}");
        p["apple_uuid"].as_str().expect("apple_uuid").to_owned()
    }

    /// A transport to the app.
    pub fn http(&self) -> HyperHttp {
        HyperHttp::to(self.app.addr)
    }

    /// The DEP profile's `url`, as the profile defined with Apple says.
    pub fn enroll_url(&self) -> String {
        format!("{SERVER_URL}/mdm/enroll/ade")
    }

    /// Up to `n` serials of the organisation's devices of a family (`iPhone`, `iPad`).
    pub fn serials(&self, family: &str, n: usize) -> Vec<String> {
        let c = self.dep.control();
        c.serials()
            .into_iter()
            .filter(|s| c.device(s).is_some_and(|d| d.device_family == family))
            .take(n)
            .collect()
    }

    /// Assigns our profile to `serials` through the admin API (Apple, then our inventory).
    pub async fn assign(&self, serials: &[String]) {
        self.assign_to(self.profile, serials).await
    }

    /// Assigns `profile` to `serials` (at most 1,000, Apple's limit per call).
    pub async fn assign_to(&self, profile: u64, serials: &[String]) {
        let (s, b) = self
            .app
            .admin(
                Method::POST,
                &format!("/api/v1/tokens/{}/profiles/{profile}/devices", self.token),
                Some(json!({ "serials": serials })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["devices"], serials.len(), "{b}");
    }

    /// Another iOS profile of the token, without Setup Assistant waiting for
    /// DeviceConfigured: devices enrolled with it start with an empty queue.
    pub async fn profile_without_setup(&self) -> u64 {
        let (s, p) = self
            .app
            .admin(
                Method::POST,
                &format!("/api/v1/tokens/{}/profiles", self.token),
                Some(json!({
                    "name": "iOS, no setup",
                    "platform": "ios",
                    "user_affinity": "without_user",
                    "await_device_configured": false,
                })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        p["id"].as_u64().expect("profile id")
    }

    /// Up to `n` serials of the organisation's iPhones and iPads.
    pub fn ios_serials(&self, n: usize) -> Vec<String> {
        let c = self.dep.control();
        c.serials()
            .into_iter()
            .filter(|s| {
                c.device(s)
                    .is_some_and(|d| d.device_family == "iPhone" || d.device_family == "iPad")
            })
            .take(n)
            .collect()
    }

    /// A simulated device for an organisation serial (kind from Apple's record).
    pub fn device(&self, serial: &str) -> Device {
        let (kind, udid, os) = self.device_facts(serial);
        Device::new(&self.apple, kind, serial, &udid, os).expect("device")
    }

    /// [`Lab::device`] with key pairs made once for many devices.
    pub fn device_with_keys(&self, serial: &str, keys: &SharedKeys) -> Device {
        let (kind, udid, os) = self.device_facts(serial);
        Device::with_shared_keys(&self.apple, keys, kind, serial, &udid, os).expect("device")
    }

    fn device_facts(&self, serial: &str) -> (DeviceKind, String, &'static str) {
        let family = self
            .dep
            .control()
            .device(serial)
            .map(|d| d.device_family)
            .unwrap_or_default();
        let (kind, os) = device_kind(&family);
        (kind, mdm_devicesim::random_udid(kind), os)
    }

    /// The whole ADE enrollment of `d` (AwaitingConfiguration as a DEP device). The
    /// server pushes the device its setup work; like a woken device, `d` then fetches
    /// and answers it, ending with DeviceConfigured.
    pub async fn enroll(&self, d: &mut Device) {
        d.enroll_ade(&self.http(), &self.enroll_url(), true)
            .await
            .unwrap_or_else(|e| panic!("enrolling {}: {e}", d.serial));
        let setup = d
            .run_until_idle(&self.http())
            .await
            .unwrap_or_else(|e| panic!("setup of {}: {e}", d.serial));
        assert_eq!(
            setup.last().map(|a| a.command.request_type.as_str()),
            Some("DeviceConfigured"),
            "the server releases the device from Setup Assistant"
        );
    }

    /// What every enrollment through this lab must have given `d`: our signed profile
    /// (push topic, ServerURL under [`SERVER_URL`], signed messages) and an MDM identity
    /// from our SCEP that chains to the profile's CA payload.
    pub fn check_profile(&self, d: &Device) {
        let p = d.profile().expect("profile installed");
        let signer = p.signer.as_ref().expect("the profile is signed");
        // Signed with a key of its own: not our SCEP CA's (a trust anchor on every
        // device), and not a CA.
        assert!(!signer.is_ca(), "profiles are signed by a CA certificate");
        assert!(
            p.ca_certs.iter().all(|ca| ca.der() != signer.der()),
            "the trust anchor signs profiles"
        );
        assert_eq!(p.mdm.topic, self.apns.topic());
        assert!(
            p.mdm.server_url.starts_with(SERVER_URL),
            "{}",
            p.mdm.server_url
        );
        assert!(p.mdm.sign_message);
        let identity = d.mdm_identity().expect("SCEP identity");
        assert!(
            p.ca_certs.is_empty()
                || p.ca_certs
                    .iter()
                    .any(|ca| identity.certificate.verify_issued_by(ca).is_ok()),
            "the identity chains to the profile's CA payload"
        );
    }

    /// `n` iPhones and iPads assigned a profile without Setup Assistant waiting, enrolled
    /// zero-touch (AwaitingConfiguration false) with at most `in_flight` enrollments at
    /// once over `http`, sharing `keys` (see [`SharedKeys`]). In the order of
    /// [`Lab::ios_serials`]. Panics if the organisation has fewer.
    pub async fn enroll_many<H: Http + 'static>(
        &self,
        n: usize,
        keys: &SharedKeys,
        http: Arc<H>,
        in_flight: usize,
    ) -> Vec<Device> {
        let serials = self.ios_serials(n);
        assert_eq!(serials.len(), n, "the organisation has {n} iOS devices");
        let profile = self.profile_without_setup().await;
        for chunk in serials.chunks(1000) {
            self.assign_to(profile, chunk).await;
        }
        let url = self.enroll_url();
        let gate = Arc::new(Semaphore::new(in_flight));
        let mut enrolling = Vec::new();
        for serial in &serials {
            let mut d = self.device_with_keys(serial, keys);
            let (http, url, gate) = (http.clone(), url.clone(), gate.clone());
            enrolling.push(tokio::spawn(async move {
                let _permit = gate.acquire().await.expect("never closed");
                d.enroll_ade(&*http, &url, false)
                    .await
                    .unwrap_or_else(|e| panic!("enrolling {}: {e}", d.serial));
                d
            }));
        }
        let mut devices = Vec::with_capacity(n);
        for e in enrolling {
            devices.push(e.await.expect("enrollment task"));
        }
        devices
    }

    /// The scheduler's tick.
    pub async fn tick(&self) -> Value {
        let (s, b) = self
            .app
            .call(Method::POST, "/internal/tick", Some(SYNC_KEY), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b
    }

    pub async fn shutdown(self) {
        self.app.shutdown().await;
        self.apns.shutdown();
    }
}
