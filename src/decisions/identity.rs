//! From a TLS client certificate to the policy client it proves (semantics.md §6).
//!
//! Runs at CONNECT, after the handshake has proven that the peer holds the key of
//! the certificate (see `verifier.rs`), against the policy in force at that moment,
//! so a reloaded policy applies to the next connection without a new TLS setup.
//!
//! - `ThumbprintMatch`: the SHA-256 of the DER certificate is in the client's
//!   `allowedThumbprints`. No chain is needed (self-signed certificates work).
//! - `*MatchesAuthenticationName`: the certificate chains to one of the policy's
//!   `caCertificates` for client authentication, and the named field (subject CN,
//!   DNS / URI / IP / e-mail SAN) equals the authentication name.
//!
//! In both schemes the certificate must be within its validity period. The CONNECT
//! username, when given, must be the authentication name the certificate proves.
//! This module depends on the compiled model only, not on the broker.

use crate::certs::{parse_certificates, thumbprint};
use crate::compiler::model::{Client, ResolvedPolicy};
use crate::source::model::ValidationScheme;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use std::net::IpAddr;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// The certificates a TLS client presented: its own first, then intermediates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificates {
    pub end_entity: CertificateDer<'static>,
    pub intermediates: Vec<CertificateDer<'static>>,
}

/// Why a certificate does not admit a client. `detail` is for the broker's log;
/// [`CertificateRefusal::client_reason`] is what the client itself may be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRefusal {
    pub kind: RefusalKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// No client of the policy accepts this certificate (unknown thumbprint,
    /// untrusted issuer, expired, no matching name): MQTT 5 0x87 / 3.1.1 0x05.
    NotAccepted,
    /// The certificate proves a client, but the CONNECT username names another:
    /// MQTT 5 0x86 / 3.1.1 0x04.
    UsernameMismatch,
}

impl CertificateRefusal {
    fn not_accepted(detail: impl Into<String>) -> Self {
        CertificateRefusal {
            kind: RefusalKind::NotAccepted,
            detail: detail.into(),
        }
    }

    /// A reason that speaks only of the client's own certificate and username,
    /// never of other clients (MQTT 5 reason string).
    pub fn client_reason(&self) -> &'static str {
        match self.kind {
            RefusalKind::NotAccepted => "the client certificate is not accepted by the policy",
            RefusalKind::UsernameMismatch => "the client certificate does not prove the username",
        }
    }
}

/// The scheme that applies to `client`: the explicit `validationScheme`, else
/// `ThumbprintMatch` when thumbprints are listed, else none (the client cannot
/// authenticate with a certificate: deny by default).
pub fn effective_scheme(client: &Client) -> Option<ValidationScheme> {
    let auth = client.authentication.as_ref()?;
    match auth.validation_scheme {
        Some(s) => Some(s),
        None if !auth.allowed_thumbprints.is_empty() => Some(ValidationScheme::ThumbprintMatch),
        None => None,
    }
}

/// The index (into `policy.clients`) of the client that `peer` proves.
pub fn authenticate(
    policy: &ResolvedPolicy,
    peer: &PeerCertificates,
    username: Option<&str>,
    now: UnixTime,
) -> Result<usize, CertificateRefusal> {
    let print = thumbprint(&peer.end_entity);
    let (_, cert) = x509_parser::parse_x509_certificate(&peer.end_entity).map_err(|e| {
        CertificateRefusal::not_accepted(format!("certificate {print} cannot be parsed: {e}"))
    })?;
    check_validity(&cert, now)
        .map_err(|e| CertificateRefusal::not_accepted(format!("certificate {print} {e}")))?;

    // Clients whose thumbprint list holds this certificate.
    let mut candidates: Vec<usize> = policy
        .clients
        .iter()
        .enumerate()
        .filter(|(_, c)| effective_scheme(c) == Some(ValidationScheme::ThumbprintMatch))
        .filter(|(_, c)| {
            c.authentication
                .as_ref()
                .is_some_and(|a| a.allowed_thumbprints.iter().any(|t| t.value == print))
        })
        .map(|(i, _)| i)
        .collect();

    // Clients whose named field matches, if the certificate chains to a policy CA.
    let wants_chain = policy
        .clients
        .iter()
        .any(|c| effective_scheme(c).is_some_and(|s| s != ValidationScheme::ThumbprintMatch));
    let mut chain_note = String::new();
    if wants_chain {
        match verify_chain(policy, peer, now) {
            Ok(()) => {
                let names = CertNames::of(&cert);
                for (i, c) in policy.clients.iter().enumerate() {
                    if let Some(s) = effective_scheme(c) {
                        if s != ValidationScheme::ThumbprintMatch
                            && names.matches(s, &c.authentication_name.value)
                        {
                            candidates.push(i);
                        }
                    }
                }
            }
            Err(e) => chain_note = format!("; not accepted by chain: {e}"),
        }
    }

    if candidates.is_empty() {
        return Err(CertificateRefusal::not_accepted(format!(
            "certificate {print} (subject `{}`) is not accepted by any client: thumbprint not allowed{chain_note}",
            cert.subject()
        )));
    }
    match username {
        Some(user) => candidates
            .iter()
            .copied()
            .find(|&i| {
                policy.clients[i].authentication_name.value.to_lowercase() == user.to_lowercase()
            })
            .ok_or_else(|| CertificateRefusal {
                kind: RefusalKind::UsernameMismatch,
                detail: format!(
                    "certificate {print} proves `{}`, not the username `{user}`",
                    policy.clients[candidates[0]].authentication_name.value
                ),
            }),
        None if candidates.len() == 1 => Ok(candidates[0]),
        None => Err(CertificateRefusal::not_accepted(format!(
            "certificate {print} proves {} clients; the CONNECT username must say which",
            candidates.len()
        ))),
    }
}

fn check_validity(cert: &X509Certificate<'_>, now: UnixTime) -> Result<(), String> {
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let v = cert.validity();
    if now < v.not_before.timestamp() {
        return Err(format!("is not valid before {}", v.not_before));
    }
    if now > v.not_after.timestamp() {
        return Err(format!("expired at {}", v.not_after));
    }
    Ok(())
}

/// Verifies that the end-entity certificate chains (through the presented
/// intermediates) to a policy CA, for client authentication, at `now`.
fn verify_chain(
    policy: &ResolvedPolicy,
    peer: &PeerCertificates,
    now: UnixTime,
) -> Result<(), String> {
    let mut ca_ders = Vec::new();
    for ca in &policy.ca_certificates {
        match parse_certificates(ca.pem.as_bytes()) {
            Ok(certs) => ca_ders.extend(certs),
            Err(e) => {
                tracing::warn!(ca = %ca.name.value, error = %e, "CA certificate of the policy cannot be read")
            }
        }
    }
    if ca_ders.is_empty() {
        return Err("the policy lists no CA certificate".into());
    }
    let anchors: Vec<TrustAnchor<'_>> = ca_ders
        .iter()
        .filter_map(|der| webpki::anchor_from_trusted_cert(der).ok())
        .collect();
    let ee = webpki::EndEntityCert::try_from(&peer.end_entity).map_err(|e| e.to_string())?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &peer.intermediates,
        now,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("not issued by a CA of the policy ({e:?})"))
}

/// The names a certificate carries, by field.
#[derive(Debug, Default)]
struct CertNames {
    common_names: Vec<String>,
    dns: Vec<String>,
    uris: Vec<String>,
    ips: Vec<IpAddr>,
    emails: Vec<String>,
}

impl CertNames {
    fn of(cert: &X509Certificate<'_>) -> Self {
        let mut names = CertNames {
            common_names: cert
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_string))
                .collect(),
            ..CertNames::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(s) => names.dns.push(s.to_string()),
                    GeneralName::URI(s) => names.uris.push(s.to_string()),
                    GeneralName::RFC822Name(s) => names.emails.push(s.to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            names.ips.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            names.ips.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        names
    }

    /// Does the field `scheme` names equal `authentication_name`? Authentication
    /// names compare case-insensitively (semantics.md §1); IP addresses by value.
    fn matches(&self, scheme: ValidationScheme, authentication_name: &str) -> bool {
        let want = authentication_name.to_lowercase();
        let eq = |list: &[String]| list.iter().any(|s| s.to_lowercase() == want);
        match scheme {
            ValidationScheme::SubjectMatchesAuthenticationName => eq(&self.common_names),
            ValidationScheme::DnsMatchesAuthenticationName => eq(&self.dns),
            ValidationScheme::UriMatchesAuthenticationName => eq(&self.uris),
            ValidationScheme::EmailMatchesAuthenticationName => eq(&self.emails),
            ValidationScheme::IpMatchesAuthenticationName => authentication_name
                .parse::<IpAddr>()
                .is_ok_and(|ip| self.ips.contains(&ip)),
            ValidationScheme::ThumbprintMatch => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::dev_ca::{self_signed_client, DevCa, Issued, Validity};
    use crate::compiler::front_end;
    use rcgen::{CertificateParams, DistinguishedName, DnType, SanType};
    use time::Duration;

    fn peer(issued: &Issued) -> PeerCertificates {
        PeerCertificates {
            end_entity: CertificateDer::from(issued.der.clone()),
            intermediates: Vec::new(),
        }
    }

    fn policy(clients: &str, cas: &[&DevCa]) -> ResolvedPolicy {
        let mut yaml = format!("clients:\n{clients}");
        if !cas.is_empty() {
            yaml.push_str("caCertificates:\n");
            for (i, ca) in cas.iter().enumerate() {
                let pem = ca.certificate_pem().trim_end().replace('\n', "\n      ");
                yaml.push_str(&format!(
                    "  ca{i}:\n    encodedCertificate: |\n      {pem}\n"
                ));
            }
        }
        let c = front_end("p.yaml", &yaml, None);
        assert!(!c.has_errors(), "{yaml}\n{:?}", c.diagnostics);
        c.resolved.expect("resolved")
    }

    fn thumbprint_policy(entries: &[(&str, &Issued)]) -> ResolvedPolicy {
        let mut clients = String::new();
        for (name, issued) in entries {
            clients.push_str(&format!(
                "  {name}:\n    authentication: {{ validationScheme: ThumbprintMatch, allowedThumbprints: [ \"{}\" ] }}\n",
                thumbprint(&issued.der).to_uppercase()
            ));
        }
        policy(&clients, &[])
    }

    fn now() -> UnixTime {
        UnixTime::now()
    }

    fn name_of(p: &ResolvedPolicy, r: Result<usize, CertificateRefusal>) -> String {
        p.clients[r.expect("accepted")].name.value.clone()
    }

    fn refused(r: Result<usize, CertificateRefusal>) -> CertificateRefusal {
        r.expect_err("refused")
    }

    fn year() -> Validity {
        Validity::days_from_now(365)
    }

    #[test]
    fn thumbprint_of_a_self_signed_certificate_names_its_client() {
        let s1 = self_signed_client("sensor1", year()).expect("s1");
        let s2 = self_signed_client("sensor2", year()).expect("s2");
        let p = thumbprint_policy(&[("sensor1", &s1), ("sensor2", &s2)]);
        assert_eq!(
            name_of(&p, authenticate(&p, &peer(&s2), None, now())),
            "sensor2"
        );
        assert_eq!(
            name_of(&p, authenticate(&p, &peer(&s1), Some("sensor1"), now())),
            "sensor1"
        );
        // Authentication names compare case-insensitively.
        assert_eq!(
            name_of(&p, authenticate(&p, &peer(&s1), Some("SENSOR1"), now())),
            "sensor1"
        );
    }

    #[test]
    fn unknown_thumbprint_is_not_accepted() {
        let s1 = self_signed_client("sensor1", year()).expect("s1");
        let stranger = self_signed_client("sensor1", year()).expect("stranger");
        let p = thumbprint_policy(&[("sensor1", &s1)]);
        let r = refused(authenticate(&p, &peer(&stranger), Some("sensor1"), now()));
        assert_eq!(r.kind, RefusalKind::NotAccepted);
        assert!(r.detail.contains("thumbprint not allowed"), "{}", r.detail);
        assert_eq!(
            r.client_reason(),
            "the client certificate is not accepted by the policy"
        );
    }

    #[test]
    fn another_clients_certificate_does_not_prove_the_username() {
        let s1 = self_signed_client("sensor1", year()).expect("s1");
        let s2 = self_signed_client("sensor2", year()).expect("s2");
        let p = thumbprint_policy(&[("sensor1", &s1), ("sensor2", &s2)]);
        let r = refused(authenticate(&p, &peer(&s2), Some("sensor1"), now()));
        assert_eq!(r.kind, RefusalKind::UsernameMismatch);
        assert!(
            r.detail
                .contains("proves `sensor2`, not the username `sensor1`"),
            "{}",
            r.detail
        );
        // The client is told nothing about which client the certificate belongs to.
        assert!(!r.client_reason().contains("sensor"));
    }

    #[test]
    fn expired_and_not_yet_valid_certificates_are_refused_even_when_pinned() {
        let t = time::OffsetDateTime::now_utc();
        let expired = self_signed_client(
            "sensor1",
            Validity {
                not_before: t - Duration::days(30),
                not_after: t - Duration::days(1),
            },
        )
        .expect("expired");
        let future = self_signed_client(
            "sensor2",
            Validity {
                not_before: t + Duration::days(1),
                not_after: t + Duration::days(30),
            },
        )
        .expect("future");
        let p = thumbprint_policy(&[("sensor1", &expired), ("sensor2", &future)]);
        let r = refused(authenticate(&p, &peer(&expired), None, now()));
        assert_eq!(r.kind, RefusalKind::NotAccepted);
        assert!(r.detail.contains("expired at"), "{}", r.detail);
        let r = refused(authenticate(&p, &peer(&future), None, now()));
        assert!(r.detail.contains("not valid before"), "{}", r.detail);
    }

    #[test]
    fn subject_scheme_needs_a_chain_to_a_policy_ca() {
        let ca = DevCa::generate().expect("ca");
        let other = DevCa::generate().expect("other ca");
        let clients = "  sensor1:\n    authentication: { validationScheme: SubjectMatchesAuthenticationName }\n";
        let p = policy(clients, &[&ca]);
        let good = ca.issue_client("sensor1").expect("good");
        assert_eq!(
            name_of(&p, authenticate(&p, &peer(&good), None, now())),
            "sensor1"
        );
        assert_eq!(
            name_of(&p, authenticate(&p, &peer(&good), Some("sensor1"), now())),
            "sensor1"
        );

        let foreign = other.issue_client("sensor1").expect("foreign");
        let r = refused(authenticate(&p, &peer(&foreign), None, now()));
        assert_eq!(r.kind, RefusalKind::NotAccepted);
        assert!(
            r.detail.contains("not issued by a CA of the policy"),
            "{}",
            r.detail
        );

        // A self-signed certificate with the right subject is not a chain.
        let selfie = self_signed_client("sensor1", year()).expect("self");
        assert_eq!(
            refused(authenticate(&p, &peer(&selfie), None, now())).kind,
            RefusalKind::NotAccepted
        );

        // The subject must match the username.
        let r = refused(authenticate(&p, &peer(&good), Some("sensor2"), now()));
        assert_eq!(r.kind, RefusalKind::UsernameMismatch);

        // A policy without CAs accepts no chain.
        let no_ca = policy(clients, &[]);
        let r = refused(authenticate(&no_ca, &peer(&good), None, now()));
        assert!(r.detail.contains("lists no CA certificate"), "{}", r.detail);
    }

    #[test]
    fn chained_certificate_must_be_within_its_validity_period() {
        let ca = DevCa::generate().expect("ca");
        let t = time::OffsetDateTime::now_utc();
        let expired = ca
            .issue_client_valid(
                "sensor1",
                Validity {
                    not_before: t - Duration::days(30),
                    not_after: t - Duration::days(1),
                },
            )
            .expect("expired");
        let p = policy("  sensor1:\n    authentication: { validationScheme: SubjectMatchesAuthenticationName }\n", &[&ca]);
        let r = refused(authenticate(&p, &peer(&expired), None, now()));
        assert!(r.detail.contains("expired at"), "{}", r.detail);
    }

    #[test]
    fn intermediates_presented_by_the_client_complete_the_chain() {
        let root = DevCa::generate().expect("root");
        let mid = root.issue_intermediate("floor 3 CA").expect("intermediate");
        let leaf = mid.issue_client("sensor1").expect("leaf");
        let p = policy("  sensor1:\n    authentication: { validationScheme: SubjectMatchesAuthenticationName }\n", &[&root]);
        let mut with_mid = peer(&leaf);
        with_mid
            .intermediates
            .push(CertificateDer::from(mid.certificate_der().to_vec()));
        assert_eq!(
            name_of(&p, authenticate(&p, &with_mid, None, now())),
            "sensor1"
        );
        assert_eq!(
            refused(authenticate(&p, &peer(&leaf), None, now())).kind,
            RefusalKind::NotAccepted
        );
    }

    /// A certificate with subject CN `cn` and the given SANs, issued by `ca`.
    fn with_names(ca: &DevCa, cn: &str, sans: Vec<SanType>) -> Issued {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        ca.issue(params, year()).expect("issue")
    }

    #[test]
    fn each_name_scheme_reads_its_own_field() {
        let ca = DevCa::generate().expect("ca");
        let clients = concat!(
            "  by-dns:\n    authenticationName: dev1.factory.example\n",
            "    authentication: { validationScheme: DnsMatchesAuthenticationName }\n",
            "  by-uri:\n    authenticationName: spiffe://factory/dev2\n",
            "    authentication: { validationScheme: UriMatchesAuthenticationName }\n",
            "  by-ip:\n    authenticationName: 10.0.0.3\n",
            "    authentication: { validationScheme: IpMatchesAuthenticationName }\n",
            "  by-email:\n    authenticationName: dev4@factory.example\n",
            "    authentication: { validationScheme: EmailMatchesAuthenticationName }\n",
        );
        let p = policy(clients, &[&ca]);
        let ia5 = |s: &str| s.to_string().try_into().expect("ia5");
        let cases = [
            (
                "by-dns",
                SanType::DnsName(ia5("DEV1.factory.example")),
                "dev1.factory.example",
            ),
            (
                "by-uri",
                SanType::URI(ia5("spiffe://factory/dev2")),
                "spiffe://factory/dev2",
            ),
            (
                "by-ip",
                SanType::IpAddress("10.0.0.3".parse().expect("ip")),
                "10.0.0.3",
            ),
            (
                "by-email",
                SanType::Rfc822Name(ia5("dev4@factory.example")),
                "dev4@factory.example",
            ),
        ];
        for (client, san, name) in cases {
            let good = with_names(&ca, "unrelated", vec![san]);
            assert_eq!(
                name_of(&p, authenticate(&p, &peer(&good), None, now())),
                client,
                "{client}"
            );
            // The name in the subject CN only does not satisfy a SAN scheme.
            let cn_only = with_names(&ca, name, vec![]);
            assert_eq!(
                refused(authenticate(&p, &peer(&cn_only), None, now())).kind,
                RefusalKind::NotAccepted,
                "{client}"
            );
        }
    }

    #[test]
    fn a_client_without_a_scheme_cannot_use_a_certificate() {
        let ca = DevCa::generate().expect("ca");
        let p = policy("  sensor1: {}\n", &[&ca]);
        let cert = ca.issue_client("sensor1").expect("cert");
        assert_eq!(
            refused(authenticate(&p, &peer(&cert), None, now())).kind,
            RefusalKind::NotAccepted
        );
    }

    #[test]
    fn garbage_certificate_is_refused_not_a_panic() {
        let p = policy("  sensor1: {}\n", &[]);
        let junk = PeerCertificates {
            end_entity: CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]),
            intermediates: vec![],
        };
        assert_eq!(
            refused(authenticate(&p, &junk, None, now())).kind,
            RefusalKind::NotAccepted
        );
    }
}
