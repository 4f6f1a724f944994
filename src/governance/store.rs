//! [`Store`]: reading and writing the registry, config and switches directly — in
//! ZooKeeper or in a state file — for tools such as `ringsoa registry|config|switch`
//! (a server reads them through the governance thread instead).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use zookeeper_client as zk;
use zookeeper_client::CreateMode;

use super::auth::{self, ZkAuth};
use super::layout::{Kind, Layout};
use super::state_file;
use super::tls::{self, ZkTls};
use crate::control::{check_name, Provider, ServiceName};

/// A value this large, written when ZooKeeper drops the connection, is said to be
/// the likely cause (its jute.maxbuffer, about 1 MiB by default, bounds a request).
const LARGE_VALUE: usize = 512 * 1024;

/// Providers as registered: app → cluster → provider JSON objects.
pub type Registry = BTreeMap<String, BTreeMap<String, Vec<serde_json::Value>>>;

/// A folder's nodes by name: each one's value, or why it cannot be read (its ACL
/// refuses the session, or it is not UTF-8).
pub type Values = BTreeMap<String, Result<String, String>>;

/// Where the registry is (see the module docs).
pub enum Store {
    /// A ZooKeeper session.
    ZooKeeper {
        /// The session.
        client: zk::Client,
        /// Paths under the root.
        layout: Layout,
        /// The connect string (for messages).
        hosts: String,
        /// The credentials it was given (the ACL of the nodes it creates).
        auth: Vec<ZkAuth>,
    },
    /// A state file.
    File {
        /// Its path.
        path: PathBuf,
        /// Paths under the root (the file's in-memory form uses them too).
        layout: Layout,
    },
}

impl Store {
    /// Connects to ZooKeeper with credentials `auth` (over TLS with `tls`), giving
    /// up after `timeout`.
    pub async fn zookeeper(
        hosts: &str,
        root: &str,
        auth: &[ZkAuth],
        tls: Option<&ZkTls>,
        timeout: Duration,
    ) -> Result<Store, String> {
        let layout = Layout::new(root)?;
        super::connect::check(hosts)
            .map_err(|e| format!("ZooKeeper connect string {hosts:?}: {e}"))?;
        tls::require(hosts, tls)?;
        let connector = auth::connector(Duration::from_secs(6), auth).with_fail_eagerly();
        let attempt = tls::connect(connector, hosts, tls);
        let why = match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(client)) => {
                return Ok(Store::ZooKeeper {
                    client,
                    layout,
                    hosts: hosts.into(),
                    auth: auth.to_vec(),
                })
            }
            Ok(Err(e)) => auth::connect_error(&e, hosts, auth),
            Err(_) => format!("cannot reach ZooKeeper at {hosts}: no answer within {timeout:?}"),
        };
        // A tool waits for its answer: the probe may block it.
        match super::connect::diagnose(hosts, tls, timeout) {
            Some(cause) => Err(format!("{why}; {cause}")),
            None => Err(why),
        }
    }

    /// A state file (created on the first write when missing).
    pub fn file(path: PathBuf, root: &str) -> Result<Store, String> {
        Ok(Store::File {
            path,
            layout: Layout::new(root)?,
        })
    }

    fn layout(&self) -> &Layout {
        match self {
            Store::ZooKeeper { layout, .. } | Store::File { layout, .. } => layout,
        }
    }

    fn where_(&self) -> String {
        match self {
            Store::ZooKeeper { hosts, layout, .. } => {
                format!("ZooKeeper {hosts} under {}/apps", layout.root())
            }
            Store::File { path, .. } if !path.exists() => {
                format!("state file {} (no such file yet)", path.display())
            }
            Store::File { path, .. } => format!("state file {}", path.display()),
        }
    }

    /// The providers of every app (or of `app`, or of `app`'s `cluster`).
    pub async fn providers(
        &self,
        app: Option<&str>,
        cluster: Option<&str>,
    ) -> Result<Registry, String> {
        let mut out = Registry::new();
        let apps = match app {
            Some(a) => {
                check_name(a, "app")?;
                if !self.app_exists(a).await? {
                    return Err(format!("no app {a} in the {}", self.where_()));
                }
                vec![a.to_string()]
            }
            None => self.children(&self.layout().apps()).await?,
        };
        for a in apps {
            let clusters = match cluster {
                Some(c) => vec![c.to_string()],
                None => self.children(&self.layout().clusters(&a)).await?,
            };
            for c in clusters {
                let Ok(service) = ServiceName::new(&a, &c) else {
                    continue;
                };
                let folder = self.layout().providers(&service);
                let list = self.read(&folder).await?.into_iter().map(|(name, raw)| {
                    let raw = match raw {
                        Ok(raw) => raw,
                        Err(why) => return serde_json::json!({ "node": name, "unreadable": why }),
                    };
                    serde_json::from_str::<Provider>(&raw)
                        .ok()
                        .and_then(|p| serde_json::to_value(p).ok())
                        .unwrap_or_else(|| serde_json::json!({ "node": name, "invalid": raw }))
                });
                out.entry(a.clone()).or_default().insert(c, list.collect());
            }
        }
        Ok(out)
    }

    /// The effective values of `kind` for `app` (with `cluster`'s overrides on top).
    pub async fn values(
        &self,
        app: &str,
        cluster: Option<&str>,
        kind: Kind,
    ) -> Result<Values, String> {
        check_name(app, "app")?;
        if !self.app_exists(app).await? {
            return Err(format!("no app {app} in the {}", self.where_()));
        }
        let mut out = self.read(&self.layout().folder(app, None, kind)).await?;
        if let Some(c) = cluster {
            check_name(c, "cluster")?;
            out.extend(self.read(&self.layout().folder(app, Some(c), kind)).await?);
        }
        Ok(out)
    }

    /// Sets (`Some`) or removes (`None`) one value of `kind`, app-wide or for
    /// `cluster`.
    pub async fn set(
        &self,
        app: &str,
        cluster: Option<&str>,
        kind: Kind,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), String> {
        check_name(app, "app")?;
        if let Some(c) = cluster {
            check_name(c, "cluster")?;
        }
        check_name(key, "key")?;
        let at = match cluster {
            Some(c) => format!("{app}/{c}"),
            None => app.to_string(),
        };
        match self {
            Store::File { path, .. } => state_file::edit(path, app, cluster, kind, key, value),
            Store::ZooKeeper {
                client,
                layout,
                auth,
                ..
            } => {
                let folder = layout.folder(app, cluster, kind);
                let path = format!("{folder}/{key}");
                let refused = |e: zk::Error| {
                    let why = self.explain(&e);
                    match (e, value) {
                        (zk::Error::ConnectionLoss, Some(v)) if v.len() >= LARGE_VALUE => format!(
                            "{why} (ZooKeeper drops the connection of a request over its jute.maxbuffer, about 1 MiB by default, and this value is {} bytes)",
                            v.len()
                        ),
                        _ => why,
                    }
                };
                let Some(value) = value else {
                    return match client.delete(&path, None).await {
                        Ok(()) => Ok(()),
                        Err(zk::Error::NoNode) => {
                            Err(format!("{at} has no {} {key}", kind.folder()))
                        }
                        Err(e) => Err(format!("cannot delete {path}: {}", refused(e))),
                    };
                };
                let node = CreateMode::Persistent.with_acls(auth::node_acls(auth));
                super::zk::make_chroot(client, auth).await?;
                super::zk::make_app_folder(client, layout, &folder, auth)
                    .await
                    .map_err(|e| format!("cannot create {folder}: {}", refused(e)))?;
                match client.set_data(&path, value.as_bytes(), None).await {
                    Ok(_) => Ok(()),
                    Err(zk::Error::NoNode) => client
                        .create(&path, value.as_bytes(), &node)
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("cannot create {path}: {}", refused(e))),
                    Err(e) => Err(format!("cannot write {path}: {}", refused(e))),
                }
            }
        }
    }

    async fn app_exists(&self, app: &str) -> Result<bool, String> {
        Ok(self
            .children(&self.layout().apps())
            .await?
            .iter()
            .any(|a| a == app))
    }

    /// A folder's children's names (none when it is missing).
    async fn children(&self, folder: &str) -> Result<Vec<String>, String> {
        match self {
            Store::ZooKeeper { client, .. } => match client.list_children(folder).await {
                Ok(mut names) => {
                    names.sort();
                    Ok(names)
                }
                Err(zk::Error::NoNode) => Ok(Vec::new()),
                Err(e) => Err(format!("cannot list {folder}: {}", self.explain(&e))),
            },
            Store::File { .. } => {
                let prefix = format!("{folder}/");
                let mut names: Vec<String> = self
                    .file_folders()?
                    .keys()
                    .filter_map(|p| p.strip_prefix(&prefix))
                    .filter_map(|rest| rest.split('/').next())
                    .map(str::to_string)
                    .collect();
                names.dedup();
                Ok(names)
            }
        }
    }

    /// A folder's children and their values (or why each cannot be read).
    async fn read(&self, folder: &str) -> Result<Values, String> {
        let text = |v: Vec<u8>| String::from_utf8(v).map_err(|_| "value is not UTF-8".to_string());
        match self {
            Store::ZooKeeper { client, .. } => {
                let mut out = Values::new();
                let names = self.children(folder).await?;
                // The requests go out as the futures are made: one round trip for
                // the folder, not one a node.
                let paths = Vec::from_iter(names.iter().map(|name| format!("{folder}/{name}")));
                let reads = Vec::from_iter(paths.iter().map(|path| client.get_data(path)));
                for ((name, path), read) in names.into_iter().zip(&paths).zip(reads) {
                    match read.await {
                        Ok((data, _)) => out.insert(name, text(data)),
                        Err(zk::Error::NoNode) => None,
                        Err(e @ zk::Error::NoAuth) => out.insert(name, Err(self.explain(&e))),
                        Err(e) => return Err(format!("cannot read {path}: {}", self.explain(&e))),
                    };
                }
                Ok(out)
            }
            Store::File { .. } => Ok(self
                .file_folders()?
                .remove(folder)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, text(v)))
                .collect()),
        }
    }

    /// `e` for a message, with the session's credentials when a node's ACL refused
    /// it.
    fn explain(&self, e: &zk::Error) -> String {
        match self {
            Store::ZooKeeper { auth, .. } => auth::explain(e, auth),
            Store::File { .. } => e.to_string(),
        }
    }

    fn file_folders(&self) -> Result<state_file::Folders, String> {
        match self {
            Store::File { path, layout } => match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
                _ => state_file::load(path, layout),
            },
            Store::ZooKeeper { .. } => Ok(Default::default()),
        }
    }
}
