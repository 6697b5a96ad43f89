//! SCEP as the device does it with the profile's `com.apple.security.scep` payload
//! (RFC 8894): GetCACaps, GetCACert, a fresh RSA key and CSR carrying the
//! challenge, a temporary self-signed certificate, PKCSReq encrypted to the RA (or CA),
//! CertRep → the MDM identity.

use base64::Engine;
use mdm_crypto::{
    Certificate, CsrParams, DigestAlgorithm, EnvelopeCipher, KeyPair, MessageType, PkiStatus,
    RequestOptions,
};

use crate::http::Http;
use crate::{Device, MdmIdentity, SimError, fakeca};

/// What GetCACaps advertised, as the device reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaCaps(pub Vec<String>);

impl CaCaps {
    pub fn parse(text: &str) -> CaCaps {
        CaCaps(
            text.lines()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect(),
        )
    }

    pub fn has(&self, cap: &str) -> bool {
        self.0.iter().any(|c| c.eq_ignore_ascii_case(cap))
    }

    /// AES-256 when `AES` is offered, else 3DES.
    pub fn cipher(&self) -> EnvelopeCipher {
        if self.has("AES") {
            EnvelopeCipher::Aes256Cbc
        } else {
            EnvelopeCipher::DesEde3Cbc
        }
    }

    /// The strongest SHA offered (SHA-1 when none is).
    pub fn digest(&self) -> DigestAlgorithm {
        if self.has("SHA-512") {
            DigestAlgorithm::Sha512
        } else if self.has("SHA-256") {
            DigestAlgorithm::Sha256
        } else {
            DigestAlgorithm::Sha1
        }
    }

    /// PKIOperation by POST (`POSTPKIOperation` or `SCEPStandard`), else GET.
    pub fn post(&self) -> bool {
        self.has("POSTPKIOperation") || self.has("SCEPStandard")
    }
}

fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn scep_err(m: impl Into<String>) -> SimError {
    SimError::Scep(m.into())
}

impl Device {
    /// Gets the MDM identity by SCEP with the installed profile's SCEP payload. Keeps the
    /// identity (used for `Mdm-Signature` from now on) and returns its certificate.
    pub async fn scep_enroll(&mut self, http: &impl Http) -> Result<&Certificate, SimError> {
        let scep = self
            .profile
            .as_ref()
            .ok_or_else(|| SimError::NotReady("no enrollment profile installed".into()))?
            .scep
            .clone();
        let message = url_encode(scep.name.as_deref().unwrap_or(""));

        let caps = http
            .send(
                "GET",
                &with_query(&scep.url, &format!("operation=GetCACaps&message={message}")),
                &[],
                Vec::new(),
            )
            .await?;
        if caps.status != 200 {
            return Err(SimError::Status {
                what: "SCEP GetCACaps".into(),
                status: caps.status,
                body: caps.body_text(),
            });
        }
        let caps = CaCaps::parse(&caps.body_text());
        if !(caps.has("SHA-1") || caps.has("SHA-256") || caps.has("SHA-512")) {
            // iOS 10+ refuses such a CA (Apple: SCEP payload).
            return Err(scep_err(format!("GetCACaps offers no SHA: {:?}", caps.0)));
        }

        let ca = http
            .send(
                "GET",
                &with_query(&scep.url, &format!("operation=GetCACert&message={message}")),
                &[],
                Vec::new(),
            )
            .await?;
        if ca.status != 200 {
            return Err(SimError::Status {
                what: "SCEP GetCACert".into(),
                status: ca.status,
                body: ca.body_text(),
            });
        }
        let certs = match ca.header("content-type").unwrap_or("") {
            t if t.starts_with("application/x-x509-ca-ra-cert") => {
                mdm_crypto::parse_certs_only(&ca.body)
                    .map_err(|e| scep_err(format!("GetCACert certs-only: {e}")))?
            }
            t if t.starts_with("application/x-x509-ca-cert") => vec![
                Certificate::from_der(&ca.body)
                    .map_err(|e| scep_err(format!("GetCACert certificate: {e}")))?,
            ],
            other => {
                return Err(scep_err(format!(
                    "GetCACert answered Content-Type {other:?}"
                )));
            }
        };
        if let Some(fp) = &scep.ca_fingerprint {
            use sha2::Digest;
            let matches = certs.iter().filter(|c| c.is_ca()).any(|c| {
                let d = c.der();
                sha2::Sha256::digest(d).as_slice() == fp.as_slice()
                    || sha1::Sha1::digest(d).as_slice() == fp.as_slice()
            });
            if !matches {
                return Err(scep_err("no CA certificate matches CAFingerprint"));
            }
        }
        // The RA (an end-entity certificate) decrypts requests; a lone CA does both.
        let recipient = certs
            .iter()
            .find(|c| !c.is_ca())
            .or_else(|| certs.first())
            .ok_or_else(|| scep_err("GetCACert returned no certificate"))?
            .clone();

        let bits = match scep.keysize {
            Some(b @ (2048 | 4096)) => b as usize,
            // Real devices make RSA-1024 when the profile says so (or says nothing);
            // mdm-crypto's keys start at 2048, so this device uses 2048 then.
            _ => 2048,
        };
        let key = match &self.scep_key {
            Some(k) => k.clone(),
            None => KeyPair::generate_with_bits(bits)
                .map_err(|e| SimError::Crypto(format!("SCEP key: {e}")))?,
        };
        let cn = scep
            .subject_attr(&["CN", "2.5.4.3"])
            .unwrap_or(&self.udid)
            .to_owned();
        let org = scep.subject_attr(&["O", "2.5.4.10"]).map(str::to_owned);
        let mut params = CsrParams::new(&cn);
        params.organization = org.as_deref();
        params.challenge = scep.challenge.as_deref();
        let csr = mdm_crypto::build_csr(&key, &params)
            .map_err(|e| SimError::Crypto(format!("CSR: {e}")))?;
        let now = fakeca::now_unix();
        let self_signed = mdm_crypto::self_signed_certificate(&key, &cn, now - 600, now + 86_400)
            .map_err(|e| SimError::Crypto(format!("self-signed certificate: {e}")))?;
        let transaction_id = mdm_crypto::transaction_id_for(
            &key.public_key_der()
                .map_err(|e| SimError::Crypto(e.to_string()))?,
        );
        let req = mdm_crypto::build_pkcs_req(
            &csr,
            &key,
            &self_signed,
            &recipient,
            &RequestOptions {
                message_type: MessageType::PkcsReq,
                transaction_id: &transaction_id,
                cipher: caps.cipher(),
                digest: caps.digest(),
            },
        )
        .map_err(|e| SimError::Crypto(format!("PKCSReq: {e}")))?;

        let resp = if caps.post() {
            http.send(
                "POST",
                &with_query(&scep.url, "operation=PKIOperation"),
                &[("content-type", "application/x-pki-message")],
                req.der.clone(),
            )
            .await?
        } else {
            let msg = base64::engine::general_purpose::STANDARD.encode(&req.der);
            http.send(
                "GET",
                &with_query(
                    &scep.url,
                    &format!("operation=PKIOperation&message={}", url_encode(&msg)),
                ),
                &[],
                Vec::new(),
            )
            .await?
        };
        if resp.status != 200 {
            return Err(SimError::Status {
                what: "SCEP PKIOperation".into(),
                status: resp.status,
                body: resp.body_text(),
            });
        }
        let rep = mdm_crypto::parse_cert_rep(&resp.body, &key)
            .map_err(|e| scep_err(format!("CertRep: {e}")))?;
        if !certs.iter().any(|c| c.der() == rep.signer.der()) {
            return Err(scep_err(format!(
                "CertRep signed by {}, not by a GetCACert certificate",
                rep.signer.subject()
            )));
        }
        if rep.transaction_id != transaction_id {
            return Err(scep_err("CertRep transactionID differs from the request's"));
        }
        if rep.recipient_nonce != req.sender_nonce {
            return Err(scep_err("CertRep recipientNonce is not our senderNonce"));
        }
        match rep.status {
            PkiStatus::Success => {}
            PkiStatus::Failure => {
                return Err(scep_err(format!(
                    "FAILURE ({:?}{})",
                    rep.fail_info,
                    rep.fail_info_text
                        .as_deref()
                        .map(|t| format!(": {t}"))
                        .unwrap_or_default()
                )));
            }
            PkiStatus::Pending => return Err(scep_err("PENDING (polling is not simulated)")),
        }
        let cert = rep
            .certificate
            .ok_or_else(|| scep_err("SUCCESS without a certificate"))?;
        if !cert.matches_key(&key) {
            return Err(scep_err("the issued certificate is not for our key"));
        }
        let identity = self.identity.insert(MdmIdentity {
            key,
            certificate: cert,
        });
        Ok(&identity.certificate)
    }
}
