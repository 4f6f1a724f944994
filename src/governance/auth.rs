//! ZooKeeper credentials: sent when a session starts (and again on each reconnect,
//! by zookeeper-client), and the ACL of the nodes a process creates with them.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use zookeeper_client as zk;
use zookeeper_client::{Acl, Acls, AuthId, Permission};

/// One credential, `SCHEME:AUTH`: `digest:user:password`, as zkCli's `addauth
/// digest user:password` takes it, or `sasl:user:password` for SASL DIGEST-MD5
/// (a ZooKeeper with `SASLAuthenticationProvider` and a JAAS `Server` section).
/// Its `Debug` shows the scheme, never the secret.
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
        if scheme == SASL && sasl_user(auth).is_none() {
            return Err(format!("a SASL credential is sasl:user:password (got {} bytes with no user or no password)", s.len()));
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

/// The scheme of a SASL DIGEST-MD5 credential, `sasl:user:password`.
const SASL: &str = "sasl";

/// The user and password of a SASL credential's `user:password`.
fn sasl_user(auth: &str) -> Option<(&str, &str)> {
    auth.split_once(':')
        .filter(|(user, password)| !user.is_empty() && !password.is_empty())
}

/// A session connector with the session timeout and `auths` (a `sasl` one as a
/// SASL DIGEST-MD5 login, the others as ZooKeeper's `addauth`).
pub(crate) fn connector(session_timeout: Duration, auths: &[ZkAuth]) -> zk::Connector {
    auths.iter().fold(
        zk::Client::connector().with_session_timeout(session_timeout),
        |c, a| match (
            a.scheme.as_str(),
            std::str::from_utf8(&a.auth).ok().and_then(sasl_user),
        ) {
            (SASL, Some((user, password))) => c.with_sasl(zk::SaslOptions::digest_md5(
                user.to_string(),
                password.to_string(),
            )),
            _ => c.with_auth(&a.scheme, &a.auth),
        },
    )
}

/// A node's ACL with credentials: everything to whoever has the creator's
/// credentials (ZooKeeper's `auth` scheme), reading to anyone.
static GUARDED_NODE: [Acl; 2] = [
    Acl::new_const(Permission::ALL, "auth", ""),
    Acl::new_const(Permission::READ, "world", "anyone"),
];

/// A shared folder's ACL with credentials (the root, `<root>/apps`): as a node's,
/// and anyone may add nodes to it, so that the first app to make it does not shut
/// out apps with other credentials; deleting or changing what is in it stays with
/// the creator's credentials.
static GUARDED_FOLDER: LazyLock<[Acl; 2]> = LazyLock::new(|| {
    [
        Acl::new_const(Permission::ALL, "auth", ""),
        Acl::new(Permission::READ | Permission::CREATE, AuthId::anyone()),
    ]
});

/// The ACL of the nodes a process with `auths` creates under an app (its folders,
/// a registration, a value): without credentials, open to all (as before); with
/// them, [`GUARDED_NODE`]: consumers without credentials still discover providers
/// and read config, and nobody else adds, changes or deletes them.
pub(crate) fn node_acls(auths: &[ZkAuth]) -> Acls<'static> {
    if auths.is_empty() {
        Acls::anyone_all()
    } else {
        Acls::new(&GUARDED_NODE)
    }
}

/// The ACL of the shared folders (the root, `<root>/apps`) a process with `auths`
/// creates: open to all without credentials, [`GUARDED_FOLDER`] with them.
pub(crate) fn folder_acls(auths: &[ZkAuth]) -> Acls<'static> {
    if auths.is_empty() {
        Acls::anyone_all()
    } else {
        Acls::new(&*GUARDED_FOLDER)
    }
}

/// `e` for an error message; a refusal for a node's ACL says which credentials
/// the session has and where they are given.
pub(crate) fn explain(e: &zk::Error, auths: &[ZkAuth]) -> String {
    if *e == zk::Error::Unimplemented {
        return format!("{e}: {TOO_OLD}");
    }
    if *e != zk::Error::NoAuth {
        return e.to_string();
    }
    let have = schemes(auths);
    format!("{e}: the node's ACL refuses this session's credentials ({have}; given by --zk-auth or RINGSOA_ZK_AUTH, or GovernanceOptions::zk_auth in code)")
}

/// What a ZooKeeper that answers "unimplemented operation" lacks.
pub(crate) const TOO_OLD: &str = "ringsoa needs ZooKeeper 3.6 or newer (3.4 and 3.5 lack addWatch, the persistent watches it follows folders with, and 3.4 also create2)";

/// Why a session with `auths` could not be made with ZooKeeper at `hosts`: it
/// refused the credentials, or could not be reached (`e`).
pub(crate) fn connect_error(e: &zk::Error, hosts: &str, auths: &[ZkAuth]) -> String {
    if *e == zk::Error::AuthFailed && auths.is_empty() {
        return format!("ZooKeeper at {hosts} refused a session without credentials: {e} (it requires a login: --zk-auth sasl:user:password for SASL DIGEST-MD5, or GovernanceOptions::zk_auth in code)");
    }
    if *e == zk::Error::AuthFailed {
        let have = schemes(auths);
        return format!("ZooKeeper at {hosts} refused the credentials ({have}): {e} (a scheme it does not know, or credentials it rejects)");
    }
    format!("cannot reach ZooKeeper at {hosts}: {e}")
}

/// The credentials' schemes, for a message ("none" without).
fn schemes(auths: &[ZkAuth]) -> String {
    match auths.is_empty() {
        true => "none".into(),
        false => Vec::from_iter(auths.iter().map(ZkAuth::scheme)).join(", "),
    }
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
        let sasl: ZkAuth = "sasl:user:pw".parse().unwrap();
        assert_eq!(format!("{sasl:?}"), "ZkAuth(sasl:…)");
        for bad in ["sasl:user", "sasl:user:", "sasl::pw"] {
            let e = bad.parse::<ZkAuth>().unwrap_err();
            assert!(
                e.contains("sasl:user:password") && !e.contains("pw"),
                "{bad}: {e}"
            );
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
        let said = explain(&zk::Error::Unimplemented, &[]);
        assert!(said.contains("ZooKeeper 3.6 or newer"), "{said}");
        let auth = ["foo:bar".parse().unwrap()];
        let said = connect_error(&zk::Error::AuthFailed, "h:1", &auth);
        assert!(
            said.starts_with("ZooKeeper at h:1 refused the credentials (foo): "),
            "{said}"
        );
        let said = connect_error(&zk::Error::ConnectionLoss, "h:1", &auth);
        assert!(
            said.starts_with("cannot reach ZooKeeper at h:1: "),
            "{said}"
        );
    }

    #[test]
    fn creates_open_nodes_without_credentials_and_guarded_ones_with() {
        assert_eq!(node_acls(&[]), Acls::anyone_all());
        assert_eq!(folder_acls(&[]), Acls::anyone_all());
        let auth = ["digest:u:p".parse().unwrap()];
        let said = |acls: Acls<'_>| {
            acls.iter()
                .map(|a| format!("{}:{}:{}", a.scheme(), a.id(), a.permission()))
                .collect::<Vec<_>>()
        };
        let (all, read) = (Permission::ALL, Permission::READ);
        let read_create = read | Permission::CREATE;
        assert_eq!(
            said(node_acls(&auth)),
            [format!("auth::{all}"), format!("world:anyone:{read}")]
        );
        assert_eq!(
            said(folder_acls(&auth)),
            [
                format!("auth::{all}"),
                format!("world:anyone:{read_create}")
            ]
        );
    }
}
