//! Throw-away certificates for TLS tests (rcgen), written to a temp directory.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed certificate for some DNS names, as PEM files and DER.
pub struct TestCert {
    /// PEM certificate path.
    pub cert: PathBuf,
    /// PEM private key path.
    pub key: PathBuf,
    /// The certificate in DER.
    pub der: CertificateDer<'static>,
    /// The private key in DER (PKCS#8).
    pub key_der: Vec<u8>,
    _dir: Arc<tempfile::TempDir>,
}

impl TestCert {
    /// Generates a self-signed certificate valid for `names`.
    pub fn new(names: &[&str]) -> TestCert {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let ck = rcgen::generate_simple_self_signed(names.clone()).expect("rcgen");
        let stem = names[0].replace('*', "wild");
        let cert = dir.path().join(format!("{stem}.pem"));
        let key = dir.path().join(format!("{stem}.key"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        TestCert {
            cert,
            key,
            der: ck.cert.der().clone(),
            key_der: ck.key_pair.serialize_der(),
            _dir: dir,
        }
    }

    /// The private key for a rustls server config.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// A TLS client that trusts exactly `roots` and offers `alpn`.
pub fn client(roots: &[&TestCert], alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.der.clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A TLS server config for `cert` offering `alpn`.
pub fn server(cert: &TestCert, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der.clone()], cert.private_key())
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
