//! `ringsoa registry|config|switch`: read and write the registry, config and
//! switches in ZooKeeper (`--zk`) or a state file (`--state`).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ringsoa::control::Switch;
use ringsoa::governance::layout::{check_root, Kind, DEFAULT_ROOT};
use ringsoa::governance::store::Store;
use ringsoa::governance::{ZkAuth, ZkTls};

/// How long a command waits for ZooKeeper.
const ZK_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the registry is.
#[derive(clap::Args, Debug, Clone)]
#[group(id = "registry", multiple = false)]
pub struct Source {
    /// ZooKeeper connect string (host:port,host:port[/chroot]).
    #[arg(long, value_parser = ringsoa::governance::connect::check)]
    pub zk: Option<String>,
    /// A state file (TOML) instead of ZooKeeper.
    #[arg(long)]
    pub state: Option<PathBuf>,
}

/// The ZooKeeper root prefix and credentials.
#[derive(clap::Args, Debug, Clone)]
pub struct Root {
    /// ZooKeeper root prefix.
    #[arg(long = "zk-root", default_value = DEFAULT_ROOT, value_parser = check_root)]
    pub root: String,
    /// ZooKeeper credentials, SCHEME:AUTH (digest:user:password, or
    /// sasl:user:password for a SASL DIGEST-MD5 login); nodes written with
    /// them give everything to the same credentials and reading to anyone.
    #[arg(long = "zk-auth", env = "RINGSOA_ZK_AUTH", hide_env_values = true)]
    pub auth: Option<ZkAuth>,
    /// TLS to ZooKeeper: the CA (PEM) that signs its certificate; every host of
    /// --zk is then reached over TLS (its secureClientPort).
    #[arg(long = "zk-tls-ca", env = "RINGSOA_ZK_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// With --zk-tls-ca: this client's certificate (PEM), for a ZooKeeper that
    /// asks for one (ssl.clientAuth=need).
    #[arg(long = "zk-tls-cert", env = "RINGSOA_ZK_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// With --zk-tls-cert: its private key (PEM).
    #[arg(long = "zk-tls-key", env = "RINGSOA_ZK_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

/// `ringsoa registry`.
#[derive(clap::Subcommand, Debug)]
pub enum RegistryCmd {
    /// List providers as registered: every app, one app, or one app's cluster.
    Ls {
        /// The app.
        app: Option<String>,
        /// The cluster.
        cluster: Option<String>,
        #[command(flatten)]
        source: Source,
        #[command(flatten)]
        root: Root,
    },
}

/// `ringsoa config` and `ringsoa switch`.
#[derive(clap::Subcommand, Debug)]
pub enum ValueCmd {
    /// Print one value (or all, as JSON) as the app's cluster sees it: the
    /// cluster's override when there is one, else the app's value.
    Get {
        /// The app.
        app: String,
        /// The key (default: all of them).
        key: Option<String>,
        #[command(flatten)]
        at: At,
    },
    /// Set a value, app-wide or (with --cluster) as the cluster's override.
    Set {
        /// The app.
        app: String,
        /// The key.
        key: String,
        /// The value (a switch: on, off or JSON); a negative number is a value,
        /// not a flag.
        #[arg(required_unless_present = "file", allow_negative_numbers = true)]
        value: Option<String>,
        /// Read the value from FILE (`-`: standard input), for values larger than
        /// a command line holds; ZooKeeper keeps at most its jute.maxbuffer (1 MiB by
        /// default) in a node.
        #[arg(long, conflicts_with = "value")]
        file: Option<PathBuf>,
        #[command(flatten)]
        methods: Methods,
        #[command(flatten)]
        at: At,
    },
    /// Remove a value, app-wide or (with --cluster) the cluster's override.
    Rm {
        /// The app.
        app: String,
        /// The key.
        key: String,
        #[command(flatten)]
        at: At,
    },
}

/// The service whose methods a value's key may name.
#[derive(clap::Args, Debug)]
pub struct Methods {
    /// The IDL file of the app's service: a value whose key names a method the
    /// service does not have (an ACL rule, a limit, a breaker switch: a typo) is
    /// refused, as a process that knows its methods would leave it out.
    #[arg(long)]
    idl: Option<PathBuf>,
    /// The service in --idl, Name or module.Name (default: the only one its file
    /// declares).
    #[arg(long = "idl-service", requires = "idl")]
    idl_service: Option<String>,
    /// Directories searched for the IDL's includes (after the including file's
    /// own).
    #[arg(long = "include-dir", requires = "idl")]
    include_dirs: Vec<PathBuf>,
}

impl Methods {
    /// The names of the service's methods (inherited ones included), when an IDL
    /// was given.
    fn names(&self) -> Result<Option<HashSet<Vec<u8>>>, String> {
        let Some(idl) = &self.idl else {
            return Ok(None);
        };
        let program = ringsoa::idl::load(&[idl], &self.include_dirs).map_err(|e| e.to_string())?;
        let id = match &self.idl_service {
            Some(name) => program
                .find_service(name)
                .ok_or_else(|| format!("no service `{name}` in {}", idl.display()))?,
            None => {
                let root = program.roots[0];
                match &program.files[root].services[..] {
                    [_] => ringsoa::idl::model::DefId {
                        file: root,
                        index: 0,
                    },
                    [] => return Err(format!("{} declares no service", idl.display())),
                    many => {
                        let names: Vec<&str> = many.iter().map(|s| s.name.as_str()).collect();
                        return Err(format!(
                            "{} declares services {}: say which with --idl-service",
                            idl.display(),
                            names.join(", ")
                        ));
                    }
                }
            }
        };
        let names = program.all_functions(id).into_iter();
        Ok(Some(names.map(|f| f.name.as_bytes().to_vec()).collect()))
    }
}

/// Which level and where.
#[derive(clap::Args, Debug)]
pub struct At {
    /// The cluster (default: app-wide).
    #[arg(long)]
    cluster: Option<String>,
    #[command(flatten)]
    source: Source,
    #[command(flatten)]
    root: Root,
}

/// Connects to the store named by `source`.
pub async fn open(source: &Source, root: &Root) -> Result<Store, String> {
    match (&source.zk, &source.state) {
        (Some(hosts), _) => {
            let auth = Vec::from_iter(root.auth.clone());
            let tls = ZkTls::from_flags(
                root.tls_ca.as_deref(),
                root.tls_cert.as_deref(),
                root.tls_key.as_deref(),
            )?;
            Store::zookeeper(hosts, &root.root, &auth, tls.as_ref(), ZK_TIMEOUT).await
        }
        (None, Some(path)) => Store::file(path.clone(), &root.root),
        (None, None) => Err("say where the registry is: --zk HOSTS or --state FILE".into()),
    }
}

fn run(name: &str, f: impl std::future::Future<Output = Result<String, String>>) -> ExitCode {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match rt.map_err(|e| e.to_string()).and_then(|rt| rt.block_on(f)) {
        Ok(out) => crate::out(format_args!("{out}\n"), ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("ringsoa {name}: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs `ringsoa registry …`.
pub fn registry(cmd: RegistryCmd) -> ExitCode {
    let RegistryCmd::Ls {
        app,
        cluster,
        source,
        root,
    } = cmd;
    run("registry", async move {
        let store = open(&source, &root).await?;
        let reg = store.providers(app.as_deref(), cluster.as_deref()).await?;
        Ok(serde_json::to_string_pretty(&reg).expect("JSON"))
    })
}

/// Runs `ringsoa config …` (`kind` Config) or `ringsoa switch …` (Switches).
pub fn values(kind: Kind, cmd: ValueCmd) -> ExitCode {
    let name = if kind == Kind::Config {
        "config"
    } else {
        "switch"
    };
    run(name, async move {
        match cmd {
            ValueCmd::Get { app, key, at } => {
                let store = open(&at.source, &at.root).await?;
                let values = store.values(&app, at.cluster.as_deref(), kind).await?;
                let at = at.cluster.map_or(app.clone(), |c| format!("{app}/{c}"));
                match key {
                    None => {
                        let mut readable = BTreeMap::new();
                        for (k, v) in values {
                            match v {
                                Ok(v) => {
                                    readable.insert(k, v);
                                }
                                Err(why) => {
                                    eprintln!("ringsoa {name}: {at}'s {name} {k} left out: {why}")
                                }
                            }
                        }
                        Ok(serde_json::to_string_pretty(&readable).expect("JSON"))
                    }
                    Some(k) => match values.get(&k) {
                        Some(Ok(v)) => Ok(v.clone()),
                        Some(Err(why)) => Err(format!("{at}'s {name} {k} cannot be read: {why}")),
                        None => Err(format!("{at} has no {name} {k}")),
                    },
                }
            }
            ValueCmd::Set {
                app,
                key,
                value,
                file,
                methods,
                at,
            } => {
                let names = methods.names()?;
                let knows = names.map(|n| move |m: &[u8]| n.contains(m));
                let (value, shown) = match (value, file) {
                    (Some(v), _) => (v.clone(), v),
                    (None, Some(path)) => {
                        let v = crate::read_text(&path, "the value")?;
                        let shown = format!("set {key}: {} bytes", v.len());
                        (v, shown)
                    }
                    (None, None) => unreachable!("clap requires a value or --file"),
                };
                if kind == Kind::Switches {
                    Switch::parse(&value).map_err(|e| match value.trim() {
                        "open" if key.starts_with("breaker.") => format!(
                            "{e}; a breaker is held open by the JSON string \"open\" (quoted: '\"open\"')"
                        ),
                        _ => e,
                    })?;
                }
                let switch = kind == Kind::Switches;
                let knows = knows.as_ref().map(|k| k as &dyn Fn(&[u8]) -> bool);
                if let Some(bad) = ringsoa::metrics::check_value(&key, &value, switch, knows) {
                    return Err(format!(
                        "{key}: {}; nothing written (a process would leave the value out: {})",
                        bad.why, bad.then
                    ));
                }
                let store = open(&at.source, &at.root).await?;
                store
                    .set(&app, at.cluster.as_deref(), kind, &key, Some(&value))
                    .await?;
                Ok(shown)
            }
            ValueCmd::Rm { app, key, at } => {
                let store = open(&at.source, &at.root).await?;
                store
                    .set(&app, at.cluster.as_deref(), kind, &key, None)
                    .await?;
                Ok(format!("removed {key}"))
            }
        }
    })
}
