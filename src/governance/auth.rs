//! ZooKeeper credentials: sent when a session starts (and again on each reconnect,
//! by zookeeper-client), and the ACL of the nodes a process creates with them.

use std::str::FromStr;
use std::time::Duration;

use zookeeper_client as zk;
use zookeeper_client::{Acl, Acls, Permission};

/// One credential, `SCHEME:AUTH`: `digest:user:password`, as zkCli's `addauth
/// digest user:password` takes it. Its `Debug` shows the scheme, never the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ZkAuth {
    scheme: String,
    auth: Vec<u8>,
}

impl ZkAuth {
    /// The scheme (`digest`, …).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }
}

impl FromStr for ZkAuth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("a ZooKeeper credential is SCHEME:AUTH, such as digest:user:password (got {} bytes with no scheme or no auth)", s.len())
        };
        let (scheme, auth) = s.split_once(':').ok_or_else(bad)?;
        if scheme.is_empty()
            || auth.is_empty()
            || !scheme.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(bad());
        }
        Ok(ZkAuth {
            scheme: scheme.into(),
            auth: auth.as_bytes().to_vec(),
        })
    }
}

impl std::fmt::Debug for ZkAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ZkAuth({}:…)", self.scheme)
    }
}

/// A session connector with the session timeout and `auths`.
pub(crate) fn connector(session_timeout: Duration, auths: &[ZkAuth]) -> zk::Connector {
    auths.iter().fold(
        zk::Client::connector().with_session_timeout(session_timeout),
        |c, a| c.with_auth(&a.scheme, &a.auth),
    )
}

/// Everything to whoever has the creator's credentials (ZooKeeper's `auth`
/// scheme), reading to anyone.
static CREATOR_ALL_ANYONE_READ: [Acl; 2] = [
    Acl::new_const(Permission::ALL, "auth", ""),
    Acl::new_const(Permission::READ, "world", "anyone"),
];

/// The ACL of the nodes a process with `auths` creates: without credentials, open to
/// all (as before); with them, everything to the same credentials and reading to
/// anyone, so that consumers without credentials still discover providers and read
/// config, and nobody else changes or deletes them.
pub(crate) fn acls(auths: &[ZkAuth]) -> Acls<'static> {
    if auths.is_empty() {
        Acls::anyone_all()
    } else {
        Acls::new(&CREATOR_ALL_ANYONE_READ)
    }
}

/// `e` for an error message; a refusal for a node's ACL says which credentials
/// the session has and where they are given.
pub(crate) fn explain(e: &zk::Error, auths: &[ZkAuth]) -> String {
    if *e != zk::Error::NoAuth {
        return e.to_string();
    }
    let schemes: Vec<&str> = auths.iter().map(ZkAuth::scheme).collect();
    let have = match schemes.is_empty() {
        true => "none".to_string(),
        false => schemes.join(", "),
    };
    format!("{e}: the node's ACL refuses this session's credentials ({have}; given by --zk-auth or RINGSOA_ZK_AUTH)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scheme_and_auth_and_never_shows_the_secret() {
        let a: ZkAuth = "digest:user:pa:ss".parse().unwrap();
        assert_eq!(a.scheme(), "digest");
        assert_eq!(a.auth, b"user:pa:ss");
        assert_eq!(format!("{a:?}"), "ZkAuth(digest:…)");
        for bad in ["", "digest", "digest:", ":user:pw", "di gest:u:p"] {
            let e = bad.parse::<ZkAuth>().unwrap_err();
            assert!(e.contains("SCHEME:AUTH") && !e.contains("pw"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_acl_refusal_names_the_credentials() {
        let said = explain(&zk::Error::NoAuth, &[]);
        assert!(
            said.starts_with("not authorized: ") && said.contains("(none;"),
            "{said}"
        );
        let said = explain(&zk::Error::NoAuth, &["digest:u:p".parse().unwrap()]);
        assert!(said.contains("(digest;") && !said.contains("u:p"), "{said}");
        assert_eq!(
            explain(&zk::Error::NoNode, &[]),
            zk::Error::NoNode.to_string()
        );
    }

    #[test]
    fn creates_open_nodes_without_credentials_and_guarded_ones_with() {
        assert_eq!(acls(&[]), Acls::anyone_all());
        let guarded = acls(&["digest:u:p".parse().unwrap()]);
        assert_eq!(guarded.len(), 2);
        assert_eq!(
            (guarded[0].scheme(), guarded[0].permission()),
            ("auth", Permission::ALL)
        );
        assert_eq!(
            (
                guarded[1].scheme(),
                guarded[1].id(),
                guarded[1].permission()
            ),
            ("world", "anyone", Permission::READ)
        );
    }
}
