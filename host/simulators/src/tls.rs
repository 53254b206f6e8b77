//! TLS for simulators, served as the providers serve it: a test CA made at
//! run time, a server certificate for `127.0.0.1` and `localhost` signed by
//! it, client certificates it signs for merchants, and an accept loop that
//! tells every request whether its connection presented one.
//!
//! ```ignore
//! let ca = TestCa::new("payhost test CA")?;
//! let tls = ServerTls::signed_by(&ca)?;            // the simulator's side
//! let merchant = ca.client_identity("10000100")?;  // the merchant's apiclient PEM
//! // payhost trusts `ca.cert_pem()` ([egress] extra_root_certificates)
//! // and presents `merchant.to_pem()` (the merchant's `client_cert`).
//! ```
//!
//! Client certificates are asked for but optional at the handshake, as on
//! WeChat's API host, where only `/secapi/` needs one: a connection without
//! one is served and its requests carry [`ClientCertificate`]`(false)`;
//! one whose certificate the CA did not sign fails the handshake (counted
//! in [`TlsServer::handshake_failures`]) and no request is ever read from it.

use anyhow::{Context, anyhow};
use axum::Router;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A certificate authority that exists only for one test run.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// A fresh CA (ECDSA P-256) whose subject is `name`.
    pub fn new(name: &str) -> anyhow::Result<TestCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(TestCa { issuer })
    }

    /// The CA's certificate: what the client side trusts.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `127.0.0.1` and `localhost`.
    pub fn server_identity(&self) -> anyhow::Result<Identity> {
        self.leaf(
            "localhost",
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate for `common_name` (WeChat issues a merchant's
    /// `apiclient_cert` for its `mch_id`).
    pub fn client_identity(&self, common_name: &str) -> anyhow::Result<Identity> {
        self.leaf(common_name, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(
        &self,
        common_name: &str,
        names: Vec<String>,
        usage: ExtendedKeyUsagePurpose,
    ) -> anyhow::Result<Identity> {
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Identity {
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl Identity {
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Certificate, then key: `apiclient_cert.pem` and `apiclient_key.pem`
    /// in one file, which is what a merchant's `client_cert` secret holds.
    pub fn to_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }
}

/// A simulator's TLS: its own certificate and the roots its clients'
/// certificates must chain to.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub identity: Identity,
    pub client_roots_pem: String,
}

impl ServerTls {
    /// A server certificate from `ca`, which also signs the clients'.
    pub fn signed_by(ca: &TestCa) -> anyhow::Result<ServerTls> {
        Ok(ServerTls {
            identity: ca.server_identity()?,
            client_roots_pem: ca.cert_pem(),
        })
    }

    fn acceptor(&self) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        // ring, explicitly: the process may not have a default provider.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.client_roots_pem.as_bytes()) {
            roots.add(cert.context("client roots PEM")?)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        // Asked for, not required: only some paths need one.
        .allow_unauthenticated()
        .build()?;
        let chain = CertificateDer::pem_slice_iter(self.identity.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("server certificate PEM")?;
        let key = PrivateKeyDer::from_pem_slice(self.identity.key_pem.as_bytes())
            .map_err(|_| anyhow!("server key PEM does not parse"))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// Whether the request's connection presented a client certificate that
/// the server's roots verified (a request extension; absent on plain HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCertificate(pub bool);

/// What the accept loop counted.
#[derive(Debug, Default)]
pub struct TlsServer {
    handshake_failures: AtomicU64,
}

impl TlsServer {
    /// Connections whose TLS handshake failed: a client certificate from
    /// another CA, a client that does not trust the server's.
    pub fn handshake_failures(&self) -> u64 {
        self.handshake_failures.load(Ordering::SeqCst)
    }
}

/// Serves `app` over TLS on `listener` until the task is aborted; every
/// request carries its connection's [`ClientCertificate`].
pub fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: &ServerTls,
) -> anyhow::Result<(Arc<TlsServer>, tokio::task::JoinHandle<()>)> {
    let acceptor = tls.acceptor()?;
    let stats = Arc::new(TlsServer::default());
    let counted = stats.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, app, stats) = (acceptor.clone(), app.clone(), counted.clone());
            tokio::spawn(async move {
                let stream = match acceptor.accept(tcp).await {
                    Ok(s) => s,
                    Err(e) => {
                        stats.handshake_failures.fetch_add(1, Ordering::SeqCst);
                        tracing::debug!("simulator TLS handshake failed: {e}");
                        return;
                    }
                };
                let presented = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty());
                let app = app.layer(axum::Extension(ClientCertificate(presented)));
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((stats, task))
}
