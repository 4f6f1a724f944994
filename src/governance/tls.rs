//! [`ZkTls`]: TLS to ZooKeeper (its `secureClientPort`), with the CA that signs
//! its servers' certificates and, for a server that asks for one
//! (`ssl.clientAuth=need`), this process's own certificate and key.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use zookeeper_client as zk;

/// TLS settings for ZooKeeper sessions, read from PEM files once, at start. With
/// them, every host of the connect string is reached over TLS (a `tcp://HOST:PORT`
/// entry stays plain); the server's certificate must be signed by the CA and name
/// the host as it is written in the connect string (a DNS name or an IP address).
#[derive(Clone)]
pub struct ZkTls {
    ca: PathBuf,
    identity: Option<PathBuf>,
    options: zk::TlsOptions,
    /// The files' text, for [`diagnose`]: the CA, and the certificate and key.
    pems: (String, Option<(String, String)>),
}

impl ZkTls {
    /// Reads the CA certificates from `ca` and, when given, this process's
    /// certificate chain and private key from `identity` (`(cert, key)`, both PEM).
    /// An error is one line naming the file and what is wrong with it.
    pub fn from_files(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<ZkTls, String> {
        let read = |path: &Path, what: &str| {
            std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "cannot read the ZooKeeper TLS {what} {}: {e}",
                    path.display()
                )
            })
        };
        let pem = read(ca, "CA file")?;
        let mut options = zk::TlsOptions::new().with_pem_ca(&pem).map_err(|e| {
            format!(
                "the ZooKeeper TLS CA file {} holds no usable PEM certificate: {e}",
                ca.display()
            )
        })?;
        let mut pems = (pem, None);
        if let Some((cert, key)) = identity {
            let (cert_pem, key_pem) = (read(cert, "certificate")?, read(key, "key")?);
            options = options
                .with_pem_identity(&cert_pem, &key_pem)
                .map_err(|e| {
                    format!(
                        "the ZooKeeper TLS certificate {} and key {} cannot be used: {e}",
                        cert.display(),
                        key.display()
                    )
                })?;
            pems.1 = Some((cert_pem, key_pem));
        }
        Ok(ZkTls {
            ca: ca.into(),
            identity: identity.map(|(cert, _)| cert.into()),
            options,
            pems,
        })
    }

    /// From a command line's `--zk-tls-ca`, `--zk-tls-cert` and `--zk-tls-key`:
    /// none without a CA; a certificate and its key go together.
    pub fn from_flags(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<ZkTls>, String> {
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err("--zk-tls-cert and --zk-tls-key go together".into()),
        };
        match ca {
            Some(ca) => ZkTls::from_files(ca, identity).map(Some),
            None if identity.is_some() => {
                Err("--zk-tls-cert and --zk-tls-key need --zk-tls-ca, the CA that signs ZooKeeper's certificate".into())
            }
            None => Ok(None),
        }
    }

    /// A rustls client set up as zookeeper-client's is, for [`diagnose`].
    fn rustls_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.pems.0.as_bytes()) {
            let cert = cert.map_err(|e| e.to_string())?;
            roots.add(cert).map_err(|e| e.to_string())?;
        }
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let config = match &self.pems.1 {
            Some((cert, key)) => {
                let certs: Result<Vec<_>, _> =
                    CertificateDer::pem_slice_iter(cert.as_bytes()).collect();
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes());
                builder
                    .with_client_auth_cert(
                        certs.map_err(|e| e.to_string())?,
                        key.map_err(|e| e.to_string())?,
                    )
                    .map_err(|e| e.to_string())?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    /// Whether this process shows a certificate of its own.
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }
}

impl std::fmt::Debug for ZkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkTls")
            .field("ca", &self.ca)
            .field("cert", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Refuses a connect string that names a `tcp+tls://` host when no TLS settings
/// are given: that host could never be reached.
pub fn require(hosts: &str, tls: Option<&ZkTls>) -> Result<(), String> {
    if tls.is_none() && hosts.contains("tcp+tls://") {
        return Err(format!(
            "ZooKeeper connect string {hosts:?} names a tcp+tls:// host, but no CA is given for it (--zk-tls-ca FILE, or GovernanceOptions::zk_tls)"
        ));
    }
    Ok(())
}

/// Why no TLS session can be made with the first TLS host of `hosts`, found by
/// making one as the ZooKeeper client does (zookeeper-client only says "no
/// available hosts"): `None` when the handshake succeeds or the host cannot be
/// reached at all, so the cause lies elsewhere. Blocks for at most `timeout` a
/// step.
pub(crate) fn diagnose(hosts: &str, tls: &ZkTls, timeout: Duration) -> Option<String> {
    let (host, port) = first_tls_host(hosts)?;
    let addr = (host.as_str(), port).to_socket_addrs().ok()?.next()?;
    let mut sock = TcpStream::connect_timeout(&addr, timeout).ok()?;
    sock.set_read_timeout(Some(timeout)).ok()?;
    sock.set_write_timeout(Some(timeout)).ok()?;
    let fail = |e: &dyn std::fmt::Display, hint: &str| {
        Some(format!("TLS with {host}:{port} fails: {e} ({hint})"))
    };
    let config = match tls.rustls_config() {
        Ok(c) => c,
        Err(e) => return fail(&e, "the PEM files"),
    };
    let name = ServerName::try_from(host.clone()).ok()?;
    let mut conn = match rustls::ClientConnection::new(config, name) {
        Ok(c) => c,
        Err(e) => return fail(&e, "the PEM files"),
    };
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            let hint = match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                Some(rustls::Error::InvalidCertificate(_)) => "ZooKeeper's certificate must be signed by the CA of --zk-tls-ca and name the host as the connect string writes it",
                Some(rustls::Error::AlertReceived(_)) => "ZooKeeper refused this client: with ssl.clientAuth=need it wants --zk-tls-cert and --zk-tls-key, signed by a CA it trusts",
                _ => "is this port ZooKeeper's secureClientPort?",
            };
            return fail(&e, hint);
        }
    }
    None
}

/// The host and port of the first entry of `hosts` reached over TLS with TLS
/// settings (any but `tcp://` ones).
fn first_tls_host(hosts: &str) -> Option<(String, u16)> {
    let entry = hosts.split(',').find(|e| !e.starts_with("tcp://"))?;
    let entry = entry.strip_prefix("tcp+tls://").unwrap_or(entry);
    let (host, port) = super::connect::host_and_port(entry.split('/').next()?)?;
    let port = port.map_or(Some(2181), |p| p.parse().ok())?;
    Some((host.to_string(), port))
}

/// Connects `connector` to `hosts`: over TLS with `tls` (every host, but those
/// written `tcp://HOST:PORT`), else in plain TCP.
pub(crate) async fn connect(
    connector: zk::Connector,
    hosts: &str,
    tls: Option<&ZkTls>,
) -> Result<zk::Client, zk::Error> {
    match tls {
        Some(t) => {
            connector
                .with_tls(t.options.clone())
                .secure_connect(hosts)
                .await
        }
        None => connector.connect(hosts).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_cannot_be_used_are_named() {
        let dir = std::env::temp_dir().join(format!("ringsoa-zktls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = ZkTls::from_files(&missing, None).unwrap_err();
        assert!(
            e.starts_with("cannot read the ZooKeeper TLS CA file"),
            "{e}"
        );
        assert!(e.contains("missing.pem"), "{e}");
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let e = ZkTls::from_files(&junk, None).unwrap_err();
        assert!(e.contains("holds no usable PEM certificate"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_first_tls_host_is_found() {
        let first = |h| first_tls_host(h).map(|(h, p)| format!("{h} {p}"));
        assert_eq!(first("a:1,b:2/chroot").unwrap(), "a 1");
        assert_eq!(first("tcp://a:1,tcp+tls://b/c").unwrap(), "b 2181");
        assert_eq!(first("[::1]:3").unwrap(), "::1 3");
        assert_eq!(first("tcp://a:1"), None);
    }

    #[test]
    fn a_tls_host_needs_a_ca() {
        assert!(require("127.0.0.1:2181", None).is_ok());
        let e = require("a:1,tcp+tls://b:2", None).unwrap_err();
        assert!(e.contains("--zk-tls-ca"), "{e}");
    }
}
