//! [`ZkTls`] in a build without the `zk-tls` feature: none can be made, so every
//! session is plain TCP.

use std::convert::Infallible;
use std::path::Path;
use std::time::Duration;

use zookeeper_client as zk;

use super::Unshaken;

/// TLS settings for ZooKeeper sessions. This build leaves TLS out (ringsoa's
/// `zk-tls` feature is off): [`ZkTls::from_files`] says so, and no value exists.
#[derive(Clone, Debug)]
pub struct ZkTls(Infallible);

impl ZkTls {
    /// Refuses: TLS to ZooKeeper needs the `zk-tls` feature. The error is one line
    /// naming it.
    pub fn from_files(ca: &Path, _identity: Option<(&Path, &Path)>) -> Result<ZkTls, String> {
        Err(format!(
            "TLS to ZooKeeper (CA file {}) needs ringsoa built with its `zk-tls` feature, which this build leaves out",
            ca.display()
        ))
    }

    /// Nothing to read again.
    pub fn reload(&self) {
        match self.0 {}
    }

    /// Whether this process shows a certificate of its own.
    pub fn has_identity(&self) -> bool {
        match self.0 {}
    }

    /// Never called: there are no TLS settings to connect with.
    pub(crate) async fn connect(
        &self,
        _connector: zk::Connector,
        _hosts: &str,
    ) -> Result<zk::Client, zk::Error> {
        match self.0 {}
    }
}

/// Never called: there are no TLS settings to try.
pub(crate) fn handshake(
    _host: &str,
    _port: u16,
    tls: &ZkTls,
    _timeout: Duration,
) -> Result<std::net::TcpStream, Unshaken> {
    match tls.0 {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_tls_says_which_feature_it_lacks() {
        let e = ZkTls::from_files(Path::new("ca.pem"), None).unwrap_err();
        assert!(e.contains("`zk-tls` feature"), "{e}");
        assert!(e.contains("ca.pem"), "{e}");
        let e = ZkTls::from_flags(Some(Path::new("ca.pem")), None, None).unwrap_err();
        assert!(e.contains("`zk-tls` feature"), "{e}");
    }
}
