//! [`Snapshot`]: what the governance thread knows that a core needs — this app's
//! effective config and switches, and the providers of every service the process
//! serves or calls. Immutable; each core holds its own `Arc` of it (cloning that
//! touches no other core), and the maps inside are shared by every core's copy:
//! a copy per core of a large mirror's maps made each publish cost as many times
//! over as the host has cores.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// A service in the registry: an app and one of its clusters, written `app/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName {
    /// The app id.
    pub app: String,
    /// The cluster.
    pub cluster: String,
}

impl ServiceName {
    /// `app/cluster`, both checked with [`check_name`].
    pub fn new(app: &str, cluster: &str) -> Result<Self, String> {
        check_name(app, "app")?;
        check_name(cluster, "cluster")?;
        Ok(ServiceName {
            app: app.into(),
            cluster: cluster.into(),
        })
    }
}

/// Whether `s` can name an app, a cluster, a config key or a switch: non-empty,
/// ASCII letters, digits, `-`, `_` and `.`, and not `.` or `..`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 255
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// [`valid_name`], or an error naming `what` (app, cluster, key) and the rule.
pub fn check_name(s: &str, what: &str) -> Result<(), String> {
    if valid_name(s) {
        Ok(())
    } else {
        Err(format!(
            "bad {what} name {s:?}: use 1 to 255 letters, digits, '-', '_' and '.' (not \".\" or \"..\" alone)"
        ))
    }
}

impl FromStr for ServiceName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('/') {
            Some((app, cluster)) => ServiceName::new(app, cluster),
            None => Err(format!("bad service {s:?}: expected app/cluster")),
        }
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.cluster)
    }
}

/// A provider node as registered: the JSON of
/// `…/clusters/<cluster>/providers/<host>:<port>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// Host (an IP address, or a name resolved by the governance thread).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Cores serving.
    #[serde(default)]
    pub cores: u32,
    /// Relative share of calls.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The provider's version string.
    #[serde(default)]
    pub version: String,
    /// Its process id.
    #[serde(default)]
    pub pid: u32,
    /// When it started, in ms since the Unix epoch.
    #[serde(default)]
    pub started_at_ms: u64,
    /// The resolved address (not part of the JSON).
    #[serde(skip)]
    pub addr: Option<SocketAddr>,
}

fn default_weight() -> u32 {
    crate::client::node::DEFAULT_WEIGHT
}

/// Where a snapshot's values came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Nothing loaded yet (no registry, or none reached and no cache).
    Empty,
    /// A ZooKeeper session.
    ZooKeeper,
    /// The disk cache (ZooKeeper not reached yet).
    Cache,
    /// The local state file, or the embedded defaults.
    File,
}

/// One immutable view of governance state.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// This process's app.
    pub app: String,
    /// This process's cluster.
    pub cluster: String,
    /// Where the values came from.
    pub source: Source,
    /// Increases with every snapshot the governance thread publishes.
    pub version: u64,
    /// When the change that made this snapshot was seen by the governance thread.
    pub seen_at: SystemTime,
    /// Effective config: app values with this cluster's overrides applied.
    pub config: Arc<BTreeMap<String, String>>,
    /// Effective switches, likewise.
    pub switches: Arc<BTreeMap<String, String>>,
    /// The app's own config, before this cluster's overrides: what a rule falls
    /// back to when an override is a value its key does not take.
    pub app_config: Arc<BTreeMap<String, String>>,
    /// The app's own switches, likewise.
    pub app_switches: Arc<BTreeMap<String, String>>,
    /// Providers of each service loaded so far, in address order (an empty list:
    /// loaded, none). A service's list is the same `Arc` from one snapshot to the
    /// next while it does not change.
    pub services: Arc<BTreeMap<ServiceName, Arc<[Provider]>>>,
}

/// A switch's value: `on`, `off`, or any JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Switch {
    /// `on`.
    On,
    /// `off`.
    Off,
    /// Anything else, as JSON.
    Json(serde_json::Value),
}

impl Switch {
    /// Parses a switch value: `on`, `off` (in any case, as an operator may type
    /// them in zkCli) or JSON.
    pub fn parse(s: &str) -> Result<Switch, String> {
        match s.trim() {
            t if t.eq_ignore_ascii_case("on") => Ok(Switch::On),
            t if t.eq_ignore_ascii_case("off") => Ok(Switch::Off),
            other => serde_json::from_str(other).map(Switch::Json).map_err(|e| {
                format!("a switch is on, off or JSON; {other:?} is none of these ({e})")
            }),
        }
    }
}

impl Snapshot {
    /// An empty snapshot for `app`/`cluster`.
    pub fn empty(app: &str, cluster: &str) -> Self {
        Snapshot {
            app: app.into(),
            cluster: cluster.into(),
            source: Source::Empty,
            version: 0,
            seen_at: SystemTime::now(),
            config: Arc::default(),
            switches: Arc::default(),
            app_config: Arc::default(),
            app_switches: Arc::default(),
            services: Arc::default(),
        }
    }

    /// A config value as a string.
    pub fn config_str(&self, key: &str) -> Option<&str> {
        self.config.get(key).map(String::as_str)
    }

    /// A config value parsed as `T` (`None` when absent). This cluster's value,
    /// or, when that one does not parse as `T` and the app-wide value does, the
    /// app-wide value, as the control rules fall back: a cluster's override
    /// mistyped in ZooKeeper does not leave a service on its built-in default
    /// (logged once per key and snapshot). An error, naming the key and the value
    /// in force, when neither parses.
    pub fn config<T: FromStr>(&self, key: &str) -> Result<Option<T>, String>
    where
        T::Err: fmt::Display,
    {
        let parse = |v: &String| {
            v.trim()
                .parse()
                .map_err(|e| format!("config {key} = {v:?}: {e}"))
        };
        let here = self.config.get(key);
        match here.map(parse).transpose() {
            Err(e) => match self.app_config.get(key).filter(|&v| Some(v) != here) {
                Some(app) => {
                    let read = parse(app).map(Some).map_err(|_| e.clone())?;
                    self.fell_back("config", key, &e, app);
                    Ok(read)
                }
                None => Err(e),
            },
            read => read,
        }
    }

    /// Logs that this cluster's override of `key` gave way to the app-wide
    /// value, once per key and snapshot (its values never change): a handler may
    /// read the key on every call.
    fn fell_back(&self, kind: &str, key: &str, why: &str, app: &str) {
        static TOLD: Mutex<BTreeMap<(String, String), u64>> = Mutex::new(BTreeMap::new());
        let mut told = TOLD.lock().unwrap_or_else(|e| e.into_inner());
        let place = (kind.to_string(), key.to_string());
        if told.insert(place, self.version) == Some(self.version) {
            return;
        }
        drop(told);
        let cluster = &self.cluster;
        tracing::warn!("{why} (cluster {cluster}): the app-wide value {app:?} is in force");
    }

    /// A switch (`None` when absent or not a valid switch value). This
    /// cluster's value, or the app-wide one when that one is not valid.
    pub fn switch(&self, name: &str) -> Option<Switch> {
        let valid = |m: &BTreeMap<String, String>| m.get(name).and_then(|v| Switch::parse(v).ok());
        valid(&self.switches).or_else(|| {
            let app = valid(&self.app_switches)?;
            if let (Some(here), Some(v)) = (self.switches.get(name), self.app_switches.get(name)) {
                if here != v {
                    self.fell_back(
                        "switch",
                        name,
                        &format!("switch {name} = {here:?}: not on, off or JSON"),
                        v,
                    );
                }
            }
            Some(app)
        })
    }

    /// Whether switch `name` is `on` (or the JSON `true`); `default` when it is
    /// absent or neither on nor off (nor `true` nor `false`).
    pub fn switch_on(&self, name: &str, default: bool) -> bool {
        match self.switch(name) {
            Some(Switch::On) => true,
            Some(Switch::Off) => false,
            Some(Switch::Json(serde_json::Value::Bool(on))) => on,
            _ => default,
        }
    }

    /// The providers of `service`, or `None` when they are not loaded (yet).
    pub fn providers(&self, service: &ServiceName) -> Option<&[Provider]> {
        self.services.get(service).map(|p| &p[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_switches_parse_or_say_why() {
        assert_eq!(
            "demo/main".parse::<ServiceName>().unwrap().to_string(),
            "demo/main"
        );
        for bad in ["demo", "/main", "demo/", "a/b/c", "a b/c", "../x"] {
            assert!(bad.parse::<ServiceName>().is_err(), "{bad}");
        }
        assert_eq!(Switch::parse("on"), Ok(Switch::On));
        assert_eq!(Switch::parse(" off\n"), Ok(Switch::Off));
        assert_eq!(Switch::parse("ON"), Ok(Switch::On));
        assert_eq!(Switch::parse("Off"), Ok(Switch::Off));
        assert_eq!(
            Switch::parse("{\"ratio\":0.5}"),
            Ok(Switch::Json(serde_json::json!({"ratio": 0.5})))
        );
        assert!(Switch::parse("maybe")
            .unwrap_err()
            .contains("on, off or JSON"));
        assert!(check_name(&"a".repeat(255), "key").is_ok());
        for bad in ["", ".", "..", "a/b", &"a".repeat(256)] {
            let e = check_name(bad, "key").unwrap_err();
            assert!(
                e.contains("1 to 255 letters") && e.contains("\"..\" alone"),
                "{e}"
            );
        }
        assert!(check_name("...", "key").is_ok());
    }

    #[test]
    fn json_booleans_are_on_and_off_and_anything_else_is_the_default() {
        let mut snap = Snapshot::empty("a", "c");
        for (name, value) in [("t", "true"), ("f", "false"), ("n", "1"), ("bad", "maybe")] {
            Arc::make_mut(&mut snap.switches).insert(name.into(), value.into());
        }
        let on = |name, default| snap.switch_on(name, default);
        assert!(on("t", false) && !on("f", true));
        assert!(on("n", true) && !on("n", false));
        assert!(on("bad", true) && on("absent", true) && !on("absent", false));
    }

    #[test]
    fn typed_config_reads_name_the_key_on_error() {
        let mut s = Snapshot::empty("a", "c");
        let config = Arc::make_mut(&mut s.config);
        config.insert("n".into(), " 42 ".into());
        config.insert("bad".into(), "x".into());
        assert_eq!(s.config::<u32>("n"), Ok(Some(42)));
        assert_eq!(s.config::<u32>("absent"), Ok(None));
        assert!(s.config::<u32>("bad").unwrap_err().contains("config bad"));
        Arc::make_mut(&mut s.switches).insert("j".into(), "[1]".into());
        assert!(s.switch_on("j", true));
        assert!(!s.switch_on("absent", false));
    }

    /// A cluster's override that does not parse gives way to the app-wide value
    /// when that one parses; one that parses holds.
    #[test]
    fn a_cluster_override_that_does_not_parse_gives_way_to_the_app_wide_value() {
        let mut s = Snapshot::empty("a", "c");
        let pairs = [
            ("n", "7", "x"),
            ("m", "7", "8"),
            ("both", "y", "x"),
            ("t", "on", "maybe"),
        ];
        for (key, app, here) in pairs {
            Arc::make_mut(&mut s.app_config).insert(key.into(), app.into());
            Arc::make_mut(&mut s.config).insert(key.into(), here.into());
            Arc::make_mut(&mut s.app_switches).insert(key.into(), app.into());
            Arc::make_mut(&mut s.switches).insert(key.into(), here.into());
        }
        Arc::make_mut(&mut s.config).insert("only_here".into(), "x".into());
        assert_eq!(s.config::<u32>("n"), Ok(Some(7)), "the app-wide value");
        assert_eq!(s.config::<u32>("m"), Ok(Some(8)), "the override");
        let e = s.config::<u32>("both").unwrap_err();
        assert!(
            e.contains(r#"config both = "x""#),
            "the value in force: {e}"
        );
        assert!(s.config::<u32>("only_here").is_err());
        assert_eq!(s.switch("t"), Some(Switch::On), "the app-wide switch");
        assert!(s.switch_on("t", false));
        assert_eq!(s.switch("both"), None, "neither is a switch value");
    }

    /// A handler reading a key whose override gives way on every call: one line
    /// per snapshot, for config and switches alike.
    #[test]
    fn a_fallback_is_logged_once_per_key_and_snapshot() {
        let mut s = Snapshot::empty("a", "c");
        s.version = 7;
        for key in ["logged_n", "logged_t"] {
            let value = if key == "logged_n" { "7" } else { "on" };
            Arc::make_mut(&mut s.app_config).insert(key.into(), value.into());
            Arc::make_mut(&mut s.config).insert(key.into(), "x".into());
            Arc::make_mut(&mut s.app_switches).insert(key.into(), value.into());
            Arc::make_mut(&mut s.switches).insert(key.into(), "maybe".into());
        }
        let read = |s: &Snapshot| {
            for _ in 0..5 {
                assert_eq!(s.config::<u32>("logged_n"), Ok(Some(7)));
                assert!(s.switch_on("logged_t", false));
            }
        };
        let lines = |s: &Snapshot| {
            crate::logs::throttle::lines_logged("ringsoa::control::snapshot", || read(s))
        };
        assert_eq!(lines(&s), 2);
        assert_eq!(lines(&s), 0, "told already");
        s.version = 8;
        assert_eq!(lines(&s), 2, "a new snapshot");
    }
}
