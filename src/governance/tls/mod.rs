//! [`ZkTls`]: TLS to ZooKeeper (its `secureClientPort`), with the CA that signs
//! its servers' certificates and, for a server that asks for one
//! (`ssl.clientAuth=need`), this process's own certificate and key.
//!
//! TLS is ringsoa's `zk-tls` feature (on in the bundled binaries through `cli`):
//! it brings rustls with aws-lc-rs, a C library. A build without it has the same
//! API, and [`ZkTls::from_files`] answers that the feature is off.

#[cfg(not(feature = "zk-tls"))]
mod absent;
#[cfg(feature = "zk-tls")]
mod files;

#[cfg(not(feature = "zk-tls"))]
pub(crate) use absent::handshake;
#[cfg(not(feature = "zk-tls"))]
pub use absent::ZkTls;
#[cfg(feature = "zk-tls")]
pub(crate) use files::handshake;
#[cfg(feature = "zk-tls")]
pub use files::ZkTls;

use std::path::Path;

use zookeeper_client as zk;

impl ZkTls {
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
}

/// Why a probe's TLS handshake ([`handshake`]) did not complete.
// Made only by the `zk-tls` feature's handshake.
#[cfg_attr(not(feature = "zk-tls"), expect(dead_code))]
pub(crate) enum Unshaken {
    /// The host cannot be reached, said as a cause.
    Unreached(String),
    /// Why, said as a cause.
    Said(String),
    /// Cut short for no reason TLS names, said as a cause: a port that does not
    /// speak TLS, or a server that closes every new connection at once.
    CutShort(String),
}

/// Connects `connector` to `hosts`: over TLS with `tls`, else in plain TCP.
pub(crate) async fn connect(
    connector: zk::Connector,
    hosts: &str,
    tls: Option<&ZkTls>,
) -> Result<zk::Client, zk::Error> {
    match tls {
        Some(t) => t.connect(connector, hosts).await,
        None => connector.connect(hosts).await,
    }
}

/// Refuses a connect string that names a `tcp+tls://` host when no TLS settings
/// are given: that host could never be reached.
pub(crate) fn require(hosts: &str, tls: Option<&ZkTls>) -> Result<(), String> {
    if tls.is_none() && hosts.contains("tcp+tls://") {
        let how = if cfg!(feature = "zk-tls") {
            "--zk-tls-ca FILE, or GovernanceOptions::zk_tls"
        } else {
            "this build has no TLS to ZooKeeper: ringsoa's `zk-tls` feature is off"
        };
        return Err(format!(
            "ZooKeeper connect string {hosts:?} names a tcp+tls:// host, but no CA is given for it ({how})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_host_needs_a_ca() {
        assert!(require("127.0.0.1:2181", None).is_ok());
        let e = require("a:1,tcp+tls://b:2", None).unwrap_err();
        let how = if cfg!(feature = "zk-tls") {
            "--zk-tls-ca"
        } else {
            "`zk-tls` feature is off"
        };
        assert!(e.contains(how), "{e}");
    }

    #[test]
    fn a_certificate_needs_its_key_and_a_ca() {
        let (ca, cert, key) = (Path::new("ca.pem"), Path::new("c.pem"), Path::new("c.key"));
        assert!(ZkTls::from_flags(None, None, None).unwrap().is_none());
        let e = ZkTls::from_flags(Some(ca), Some(cert), None).unwrap_err();
        assert!(e.contains("go together"), "{e}");
        let e = ZkTls::from_flags(None, Some(cert), Some(key)).unwrap_err();
        assert!(e.contains("need --zk-tls-ca"), "{e}");
    }
}
