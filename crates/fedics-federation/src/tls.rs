//! TLS settings (rustls with the *ring* provider, through tonic's `tls-ring` feature).

use std::fmt;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The aggregator's TLS: its certificate chain and key, and optionally the CA that signs the
/// sites' client certificates (mutual TLS: sites without a valid certificate are refused at
/// the handshake).
#[derive(Clone)]
pub struct ServerTls {
    /// PEM certificate chain of the aggregator.
    pub cert_pem: String,
    /// PEM private key of the aggregator.
    pub key_pem: String,
    /// PEM CA certificate(s) for client certificates; `None`: no client certificate required.
    pub client_ca_pem: Option<String>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("mtls", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    pub(crate) fn to_tonic(&self) -> ServerTlsConfig {
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(
            self.cert_pem.as_bytes(),
            self.key_pem.as_bytes(),
        ));
        if let Some(ca) = &self.client_ca_pem {
            config = config.client_ca_root(Certificate::from_pem(ca.as_bytes()));
        }
        config
    }
}

/// A site's TLS: the CA that signs the aggregator's certificate, the name to verify, and
/// optionally the site's own certificate for mutual TLS.
#[derive(Clone)]
pub struct ClientTls {
    /// PEM CA certificate(s) trusted for the aggregator.
    pub ca_pem: String,
    /// Server name to verify (`None`: the host of the URL).
    pub domain: Option<String>,
    /// PEM certificate chain and key of the site (mutual TLS).
    pub identity: Option<(String, String)>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("domain", &self.domain)
            .field("mtls", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    pub(crate) fn to_tonic(&self) -> ClientTlsConfig {
        let mut config =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(self.ca_pem.as_bytes()));
        if let Some(domain) = &self.domain {
            config = config.domain_name(domain.clone());
        }
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert.as_bytes(), key.as_bytes()));
        }
        config
    }
}
