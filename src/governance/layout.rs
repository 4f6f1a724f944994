//! Where things live in ZooKeeper (and, with the same paths, in the disk cache and
//! the state file's in-memory form):
//!
//! ```text
//! <root>/apps/<app>/config/<key>                        app-wide value
//! <root>/apps/<app>/switches/<name>                     app-wide switch
//! <root>/apps/<app>/clusters/<cluster>/config/<key>     cluster override
//! <root>/apps/<app>/clusters/<cluster>/switches/<name>  cluster override
//! <root>/apps/<app>/clusters/<cluster>/providers/<host>:<port>   ephemeral, JSON
//! ```

use crate::control::ServiceName;

/// The default root prefix.
pub const DEFAULT_ROOT: &str = "/ringsoa";

/// A folder whose children the mirror holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Config values.
    Config,
    /// Switches.
    Switches,
    /// Provider nodes.
    Providers,
}

impl Kind {
    /// The folder's name in the layout.
    pub fn folder(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::Switches => "switches",
            Kind::Providers => "providers",
        }
    }
}

/// Paths under one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: String,
}

impl Layout {
    /// Paths under `root` (`/` and a trailing `/` are normalised away).
    pub fn new(root: &str) -> Result<Self, String> {
        let trimmed = root.trim_end_matches('/');
        if !trimmed.is_empty() && !trimmed.starts_with('/') {
            return Err(format!("the ZooKeeper root {root:?} must start with '/'"));
        }
        if !trimmed.is_empty() && !is_zk_path(trimmed) {
            return Err(format!(
                "the ZooKeeper root {root:?} is not a ZooKeeper path ({PATH_RULE})"
            ));
        }
        Ok(Layout {
            root: trimmed.into(),
        })
    }

    /// The root prefix ("" for `/`).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `<root>/apps`.
    pub fn apps(&self) -> String {
        format!("{}/apps", self.root)
    }

    /// The folder of `kind` for `app`, app-wide (`cluster` None) or for a cluster.
    pub fn folder(&self, app: &str, cluster: Option<&str>, kind: Kind) -> String {
        match cluster {
            None => format!("{}/apps/{app}/{}", self.root, kind.folder()),
            Some(c) => format!("{}/apps/{app}/clusters/{c}/{}", self.root, kind.folder()),
        }
    }

    /// The providers folder of `service`.
    pub fn providers(&self, service: &ServiceName) -> String {
        self.folder(&service.app, Some(&service.cluster), Kind::Providers)
    }

    /// `<root>/apps/<app>/clusters`.
    pub fn clusters(&self, app: &str) -> String {
        format!("{}/apps/{app}/clusters", self.root)
    }
}

/// A provider node's name: `<host>:<port>`, an IPv6 address in brackets
/// (`[::1]:9090`, as a socket address is written).
pub fn provider_node(host: &str, port: u16) -> String {
    match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    }
}

/// `root` if it can be a [`Layout`]'s root, else why not (a flag's parser).
pub fn check_root(root: &str) -> Result<String, String> {
    Layout::new(root).map(|_| root.to_string())
}

/// What [`is_zk_path`] asks of a path, for messages.
pub(crate) const PATH_RULE: &str =
    "/a/b: no empty, `.` or `..` parts, no trailing /, no control characters";

/// Whether ZooKeeper takes `path` as a node's path: `/`, or `/`-separated parts,
/// none empty, `.` or `..`, and no character it refuses (the controls, and the
/// private-use and special ranges its `PathUtils` names).
pub(crate) fn is_zk_path(path: &str) -> bool {
    let refused = |c: char| matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}');
    match path.strip_prefix('/') {
        Some("") => true,
        Some(rest) => {
            !path.contains(refused)
                && rest
                    .split('/')
                    .all(|part| !part.is_empty() && part != "." && part != "..")
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_provider_is_named_in_brackets() {
        assert_eq!(provider_node("10.0.0.5", 9090), "10.0.0.5:9090");
        assert_eq!(provider_node("db-1.example", 9090), "db-1.example:9090");
        assert_eq!(provider_node("::1", 9090), "[::1]:9090");
    }

    #[test]
    fn paths_follow_the_design() {
        let l = Layout::new("/ringsoa/").unwrap();
        assert_eq!(
            l.folder("demo", None, Kind::Config),
            "/ringsoa/apps/demo/config"
        );
        assert_eq!(
            l.folder("demo", Some("main"), Kind::Switches),
            "/ringsoa/apps/demo/clusters/main/switches"
        );
        assert_eq!(
            l.providers(&"demo/main".parse().unwrap()),
            "/ringsoa/apps/demo/clusters/main/providers"
        );
        assert_eq!(Layout::new("/").unwrap().apps(), "/apps");
        assert_eq!(Layout::new("").unwrap().apps(), "/apps");
        assert!(Layout::new("ringsoa").is_err());
        for bad in ["//x", "/a//b", "/a/./b", "/..", "/a\u{1}b", "/a\u{e000}"] {
            let e = Layout::new(bad).unwrap_err();
            assert!(
                e.contains("is not a ZooKeeper path (/a/b: no empty"),
                "{bad}: {e}"
            );
        }
        assert_eq!(Layout::new("/a b/c.d/").unwrap().root(), "/a b/c.d");
    }
}
