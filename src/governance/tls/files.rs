//! [`ZkTls`] with the `zk-tls` feature: the PEM files read with rustls (and again
//! when they change), the connect over TLS, and a handshake of its own that says
//! why TLS fails.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use zookeeper_client as zk;

use super::Unshaken;
use crate::governance::reach::{self, NoConnection};

/// TLS settings for ZooKeeper sessions, read from PEM files at start and again
/// when one of them changes ([`ZkTls::reload`]). With them, every host of the
/// connect string is reached over TLS (a `tcp://HOST:PORT` entry stays plain); the
/// server's certificate must be signed by the CA and name the host as it is
/// written in the connect string (a DNS name or an IP address).
#[derive(Clone)]
pub struct ZkTls {
    files: Files,
    /// What new connections use; updated in place on a reload.
    certs: zk::TlsDynamicCerts,
    loaded: Arc<Mutex<Loaded>>,
}

/// The PEM files.
#[derive(Clone, Debug)]
struct Files {
    ca: PathBuf,
    identity: Option<(PathBuf, PathBuf)>,
}

/// What was read last, and when.
struct Loaded {
    /// Each file's modification time and size when it was read.
    stamps: Vec<Option<(SystemTime, u64)>>,
    pems: Pems,
}

/// The files' text: the CA, and the certificate and key.
#[derive(Clone)]
struct Pems {
    ca: String,
    identity: Option<(String, String)>,
}

impl Files {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        let identity = self.identity.iter().flat_map(|(c, k)| [c, k]);
        std::iter::once(&self.ca)
            .chain(identity)
            .map(PathBuf::as_path)
    }

    fn stamps(&self) -> Vec<Option<(SystemTime, u64)>> {
        let stamp = |p: &Path| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        };
        self.paths().map(stamp).collect()
    }

    /// Reads and checks the files: one line naming the file and what is wrong
    /// with it when they cannot be used.
    fn read(&self) -> Result<(zk::TlsCerts, Pems), String> {
        let read = |path: &Path, what: &str| {
            std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "cannot read the ZooKeeper TLS {what} {}: {e}",
                    path.display()
                )
            })
        };
        let ca_pem = read(&self.ca, "CA file")?;
        let ca = zk::TlsCa::from_pem(&ca_pem).map_err(|e| {
            format!(
                "the ZooKeeper TLS CA file {} holds no usable PEM certificate: {e}",
                self.ca.display()
            )
        })?;
        let mut builder = zk::TlsCerts::builder().with_ca(ca);
        let mut pems = Pems {
            ca: ca_pem,
            identity: None,
        };
        if let Some((cert, key)) = &self.identity {
            let (cert_pem, key_pem) = (read(cert, "certificate")?, read(key, "key")?);
            let unusable = |e: &dyn std::fmt::Display| {
                format!(
                    "the ZooKeeper TLS certificate {} and key {} cannot be used: {e}",
                    cert.display(),
                    key.display()
                )
            };
            let identity =
                zk::TlsIdentity::from_pem(&cert_pem, &key_pem).map_err(|e| unusable(&e))?;
            builder = builder.with_identity(identity);
            pems.identity = Some((cert_pem, key_pem));
            // A key that is not the certificate's (one file rewritten before the
            // other) is caught here, not at the next connection.
            rustls_config(&pems).map_err(|e| unusable(&e))?;
        }
        let certs = builder.build().map_err(|e| e.to_string())?;
        Ok((certs, pems))
    }
}

impl ZkTls {
    /// Reads the CA certificates from `ca` and, when given, this process's
    /// certificate chain and private key from `identity` (`(cert, key)`, both PEM).
    /// An error is one line naming the file and what is wrong with it.
    ///
    /// Makes aws-lc-rs rustls's process-wide crypto provider when the process has
    /// none yet: zookeeper-client asks rustls for the default one, which panics
    /// when an application's other crates build rustls with a second provider.
    pub fn from_files(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<ZkTls, String> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Another thread may have installed one in between: that one stands.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        let files = Files {
            ca: ca.into(),
            identity: identity.map(|(c, k)| (c.into(), k.into())),
        };
        let stamps = files.stamps();
        let (certs, pems) = files.read()?;
        Ok(ZkTls {
            files,
            certs: zk::TlsDynamicCerts::new(certs),
            loaded: Arc::new(Mutex::new(Loaded { stamps, pems })),
        })
    }

    /// Reads the files again when one of them changed (its modification time or
    /// size) since they were last read, so that a renewed certificate is used by
    /// the next connection without a restart. Files that cannot be used are
    /// logged once a change, and what was read before stays in use. Cheap when
    /// nothing changed: a `stat` a file.
    pub fn reload(&self) {
        let stamps = self.files.stamps();
        let mut loaded = self.loaded.lock().expect("not poisoned");
        if loaded.stamps == stamps {
            return;
        }
        loaded.stamps = stamps;
        match self.files.read() {
            Ok((certs, pems)) => {
                self.certs.update(certs);
                loaded.pems = pems;
                tracing::info!(ca = %self.files.ca.display(), "ZooKeeper TLS files changed: read again for the next connection");
            }
            Err(e) => {
                tracing::warn!("{e}: the ZooKeeper TLS files read before stay in use")
            }
        }
    }

    /// Connects `connector` to `hosts` over TLS (every host, but those written
    /// `tcp://HOST:PORT`), the files read again first when they changed.
    pub(crate) async fn connect(
        &self,
        connector: zk::Connector,
        hosts: &str,
    ) -> Result<zk::Client, zk::Error> {
        self.reload();
        connector
            .with_tls(self.options())
            .secure_connect(hosts)
            .await
    }

    /// The options for zookeeper-client, which follow [`ZkTls::reload`].
    fn options(&self) -> zk::TlsOptions {
        zk::TlsOptions::new().with_certs(self.certs.clone())
    }

    /// Whether this process shows a certificate of its own.
    pub fn has_identity(&self) -> bool {
        self.files.identity.is_some()
    }
}

impl std::fmt::Debug for ZkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// A rustls client set up with `pems` as zookeeper-client's is, for [`diagnose`]
/// and to check a certificate against its key.
fn rustls_config(pems: &Pems) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pems.ca.as_bytes()) {
        let cert = cert.map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match &pems.identity {
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

/// A TLS connection to `host`:`port` made as the ZooKeeper client makes one, its
/// handshake done; or why not (zookeeper-client only says "no available hosts").
/// Blocks for at most `timeout` a step.
pub(crate) fn handshake(
    host: &str,
    port: u16,
    tls: &ZkTls,
    timeout: Duration,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, Unshaken> {
    let mut sock = reach::connect(host, port, timeout).map_err(|e| match e {
        NoConnection::Closed => Unshaken::CutShort(format!(
            "{host}:{port} closed the connection as it was made"
        )),
        NoConnection::Unreached(why) => Unshaken::Unreached(why),
    })?;
    let set = sock
        .set_read_timeout(Some(timeout))
        .and_then(|()| sock.set_write_timeout(Some(timeout)));
    set.map_err(|e| Unshaken::Unreached(format!("{host}:{port}: {e}")))?;
    let fail = |e: &dyn std::fmt::Display, hint: &str| {
        format!("TLS with {host}:{port} fails: {e} ({hint})")
    };
    let pems = tls.loaded.lock().expect("not poisoned").pems.clone();
    let config = rustls_config(&pems).map_err(|e| Unshaken::Said(fail(&e, "the PEM files")))?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| Unshaken::Said(fail(&e, "TLS needs a DNS name or an IP address")))?;
    let mut conn = rustls::ClientConnection::new(config, name)
        .map_err(|e| Unshaken::Said(fail(&e, "the PEM files")))?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            return Err(match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                Some(rustls::Error::InvalidCertificate(_)) => Unshaken::Said(fail(&e, "ZooKeeper's certificate must be signed by the CA of --zk-tls-ca and name the host as the connect string writes it")),
                Some(rustls::Error::AlertReceived(_)) => Unshaken::Said(fail(&e, "ZooKeeper refused this client: with ssl.clientAuth=need it wants --zk-tls-cert and --zk-tls-key, signed by a CA it trusts")),
                _ => Unshaken::CutShort(fail(&e, "is this port ZooKeeper's secureClientPort?")),
            });
        }
    }
    Ok(rustls::StreamOwned::new(conn, sock))
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
}
