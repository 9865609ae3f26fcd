//! A development certificate authority: one self-signed CA that issues a server
//! certificate and a client certificate per authentication name. ECDSA P-256 keys,
//! signed with rcgen over `ring`.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};

/// How long generated certificates are valid: long enough for development, short
/// enough that nobody mistakes them for production credentials.
pub const CA_VALIDITY_DAYS: i64 = 5 * 365;
pub const LEAF_VALIDITY_DAYS: i64 = 365;

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

/// The period a certificate is valid for.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (clock skew) for `days` days.
    pub fn days_from_now(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }
}

/// A CA that can issue certificates.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    der: Vec<u8>,
    key_pem: String,
}

impl DevCa {
    /// A new CA named `topicgate development CA`.
    pub fn generate() -> Result<Self, rcgen::Error> {
        Self::generate_named(
            "topicgate development CA",
            Validity::days_from_now(CA_VALIDITY_DAYS),
        )
    }

    /// A new CA with the given common name and validity.
    pub fn generate_named(common_name: &str, validity: Validity) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert = params.self_signed(&key)?;
        Ok(DevCa {
            cert_pem: cert.pem(),
            der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }
    pub fn certificate_der(&self) -> &[u8] {
        &self.der
    }
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// An intermediate CA signed by this one.
    pub fn issue_intermediate(&self, common_name: &str) -> Result<DevCa, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let validity = Validity::days_from_now(CA_VALIDITY_DAYS);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(DevCa {
            cert_pem: cert.pem(),
            der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A TLS server certificate for `localhost`, `127.0.0.1`, `::1` and `extra_names`
    /// (DNS names or IP addresses).
    pub fn issue_server(&self, extra_names: &[String]) -> Result<Issued, rcgen::Error> {
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        for n in extra_names {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = name("topicgate server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params, Validity::days_from_now(LEAF_VALIDITY_DAYS))
    }

    /// A client certificate whose subject CN and one SAN are `authentication_name`.
    pub fn issue_client(&self, authentication_name: &str) -> Result<Issued, rcgen::Error> {
        self.issue_client_valid(
            authentication_name,
            Validity::days_from_now(LEAF_VALIDITY_DAYS),
        )
    }

    /// Like [`DevCa::issue_client`] with an explicit validity period.
    pub fn issue_client_valid(
        &self,
        authentication_name: &str,
        validity: Validity,
    ) -> Result<Issued, rcgen::Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(authentication_name);
        params.subject_alt_names = san_for(authentication_name).into_iter().collect();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params, validity)
    }

    /// Signs a certificate with these parameters (the validity is overridden).
    pub fn issue(
        &self,
        mut params: CertificateParams,
        validity: Validity,
    ) -> Result<Issued, rcgen::Error> {
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }
}

/// A self-signed client certificate (for `ThumbprintMatch`, which needs no CA).
pub fn self_signed_client(
    authentication_name: &str,
    validity: Validity,
) -> Result<Issued, rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(authentication_name);
    params.subject_alt_names = san_for(authentication_name).into_iter().collect();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let cert = params.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The SAN that carries an authentication name, by what the name looks like: an IP
/// address, an e-mail address, a URI, else a DNS name. Names that are not ASCII fit
/// no SAN type and get only the subject CN.
pub fn san_for(authentication_name: &str) -> Option<SanType> {
    if let Ok(ip) = authentication_name.parse::<IpAddr>() {
        return Some(SanType::IpAddress(ip));
    }
    let ia5 = authentication_name.to_string().try_into().ok()?;
    Some(if authentication_name.contains("://") {
        SanType::URI(ia5)
    } else if authentication_name.contains('@') {
        SanType::Rfc822Name(ia5)
    } else {
        SanType::DnsName(ia5)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_type_follows_the_shape_of_the_name() {
        assert!(matches!(san_for("10.0.0.7"), Some(SanType::IpAddress(_))));
        assert!(matches!(
            san_for("dev@example.com"),
            Some(SanType::Rfc822Name(_))
        ));
        assert!(matches!(
            san_for("spiffe://factory/sensor1"),
            Some(SanType::URI(_))
        ));
        assert!(matches!(san_for("sensor1"), Some(SanType::DnsName(_))));
        assert!(san_for("capteur-é").is_none());
    }

    #[test]
    fn issued_client_certificate_names_the_client() {
        let ca = DevCa::generate().expect("ca");
        let issued = ca.issue_client("sensor1").expect("client");
        let (_, cert) = x509_parser::parse_x509_certificate(&issued.der).expect("parse");
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok());
        assert_eq!(cn, Some("sensor1"));
        assert_eq!(
            cert.issuer(),
            x509_parser::parse_x509_certificate(ca.certificate_der())
                .expect("ca")
                .1
                .subject()
        );
    }
}
