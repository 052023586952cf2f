//! TLS for `wss://`: rustls with the ring provider on both sides.
//!
//! - [`server_config`]: from a PEM certificate chain and a PEM private key;
//! - [`self_signed`]: a fresh CA and a certificate it signed for the given names (rcgen), for
//!   `memwire serve --tls-self-signed` and tests; the CA's PEM is what a client trusts;
//! - [`client_config`]: trusting the certificates of a PEM file, or the Mozilla roots.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::{Error, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: impl Into<String>) -> impl FnOnce(rustls::Error) -> Error {
    let what = what.into();
    move |source| Error::Tls { what, source }
}

fn pem_error(what: String, file: &Path, e: rustls::pki_types::pem::Error) -> Error {
    Error::Tls {
        what: format!("{what} {}", file.display()),
        source: rustls::Error::General(e.to_string()),
    }
}

/// A server configuration from a PEM certificate chain (the server's first) and a PEM
/// private key (PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error("read certificates from".into(), cert_file, e))?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| pem_error("read a private key from".into(), key_file, e))?;
    server_config_from(certs, key, &format!("{}", cert_file.display()))
}

fn server_config_from(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    what: &str,
) -> Result<Arc<ServerConfig>> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error("protocol versions"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(tls_error(format!("server certificate {what}")))?;
    Ok(Arc::new(config))
}

/// A certificate made by [`self_signed`].
#[derive(Clone, Debug)]
pub struct SelfSigned {
    /// The server's configuration: the certificate for the names, signed by the CA.
    pub config: Arc<ServerConfig>,
    /// The CA's certificate in PEM: what a client trusts (write it to the file given as
    /// `ca_file`).
    pub ca_pem: String,
    /// The server's certificate in PEM.
    pub cert_pem: String,
}

/// A fresh CA (kept in memory only) and a server certificate it signed for `names` (DNS
/// names or IP addresses, such as `localhost` and `127.0.0.1`).
pub fn self_signed(names: &[String]) -> Result<SelfSigned> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "memwire self-signed CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(names.to_vec())?;
    leaf.distinguished_name
        .push(DnType::CommonName, "memwire store server");
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    let key = PrivateKeyDer::try_from(leaf_key.serialize_der()).map_err(|e| Error::Tls {
        what: "self-signed key".into(),
        source: rustls::Error::General(e.to_owned()),
    })?;
    let config = server_config_from(
        vec![leaf_cert.der().clone(), ca_cert.der().clone()],
        key,
        "self-signed",
    )?;
    Ok(SelfSigned {
        config,
        ca_pem: ca_cert.pem(),
        cert_pem: leaf_cert.pem(),
    })
}

/// A client configuration that trusts the certificates in the PEM file `ca_file`, or, with
/// `None`, the Mozilla root certificates (webpki-roots).
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(file) => {
            let certs = CertificateDer::pem_file_iter(file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| pem_error("read CA certificates from".into(), file, e))?;
            if certs.is_empty() {
                return Err(Error::Tls {
                    what: format!("CA file {}", file.display()),
                    source: rustls::Error::General("no certificate in the file".into()),
                });
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(tls_error(format!("CA certificate in {}", file.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error("protocol versions"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
