//! [`Mirror`]: the folders this process follows (its app's config and switches,
//! its cluster's overrides, the providers of every service it serves or calls),
//! their children as last read, and the [`Snapshot`] they make.
//!
//! Every value is checked as it comes in: a value that is not UTF-8, a switch that
//! is not on, off or JSON, or a provider node that is not valid JSON, is left out
//! and noted ([`Ignored`]), to be logged by the caller for the whole read; the rest
//! stands. A provider named by a host name is in the
//! snapshot once [`super::resolver`] has found its address.
//!
//! A snapshot shares with the one before it every part no change touched (the
//! config, the switches, each service's providers), so that a change makes only
//! its own part again, and a core can tell by pointer that a part stayed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::ignored::{Ignored, Why};
use super::layout::{Kind, Layout};
use crate::control::{Provider, ServiceName, Snapshot, Source, Switch, MAX_SERVICES};
use crate::logs::throttle::INTERVAL;

/// One followed folder.
#[derive(Debug, Clone)]
struct Folder {
    kind: Kind,
    /// Which service, for a providers folder.
    service: Option<ServiceName>,
    /// Whether it has been read at least once (or came from a cache).
    loaded: bool,
    children: BTreeMap<String, Value>,
    /// The children left out, each with its value's [`fingerprint`] (`None`: one
    /// this session may not read): one read again as it was is not logged again (a
    /// reconnect re-reads everything).
    left_out: HashMap<String, Option<u64>>,
    /// Changed since the last snapshot, which made its part of it.
    changed: bool,
}

impl Folder {
    /// Its children, to change: the next snapshot makes its part again.
    fn children_mut(&mut self) -> &mut BTreeMap<String, Value> {
        self.changed = true;
        &mut self.children
    }
}

/// One child's value, checked.
#[derive(Debug, Clone)]
struct Value {
    raw: String,
    provider: Option<Provider>,
}

/// The followed folders (see the module docs).
#[derive(Debug, Clone)]
pub struct Mirror {
    layout: Layout,
    app: String,
    cluster: String,
    folders: BTreeMap<String, Folder>,
    /// Provider host names as last looked up ([`super::resolver`]): the address
    /// found, or none when the name has never resolved.
    addrs: HashMap<Name, Option<SocketAddr>>,
    /// Host names of providers read since the last [`Mirror::take_fresh`] that had
    /// not been looked up, so that a turn of the loop asks for new names without
    /// going through every provider.
    fresh: Vec<Name>,
    /// The service limit was reached (logged once).
    full: bool,
    /// The nodes left out since the last [`Mirror::log_ignored`].
    ignored: Ignored,
    /// The parts of the last snapshot, shared with the next where unchanged.
    made: Made,
    /// Per service, the changes of its providers logged and held ([`Told`]).
    told: HashMap<ServiceName, Told>,
}

/// A snapshot's parts that the mirror makes.
#[derive(Debug, Clone, Default)]
struct Made {
    config: Arc<BTreeMap<String, String>>,
    switches: Arc<BTreeMap<String, String>>,
    app_config: Arc<BTreeMap<String, String>>,
    app_switches: Arc<BTreeMap<String, String>>,
    services: Arc<BTreeMap<ServiceName, Arc<[Provider]>>>,
}

/// The disk cache's form of a mirror: folder path → child → value.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    /// The root prefix the paths are under.
    pub root: String,
    /// Folder path → child → value.
    pub folders: BTreeMap<String, BTreeMap<String, String>>,
}

impl Mirror {
    /// The folders of `app`/`cluster`: config, switches, overrides and its own
    /// providers.
    pub fn new(layout: Layout, app: &str, cluster: &str) -> Self {
        let mut m = Mirror {
            layout,
            app: app.into(),
            cluster: cluster.into(),
            folders: BTreeMap::new(),
            addrs: HashMap::new(),
            fresh: Vec::new(),
            full: false,
            ignored: Ignored::default(),
            made: Made::default(),
            told: HashMap::new(),
        };
        for c in [None, Some(cluster)] {
            for kind in [Kind::Config, Kind::Switches] {
                let path = m.layout.folder(app, c, kind);
                m.add(path, kind, None);
            }
        }
        if let Ok(own) = ServiceName::new(app, cluster) {
            m.watch(&own);
        }
        m
    }

    fn add(&mut self, path: String, kind: Kind, service: Option<ServiceName>) -> bool {
        if self.folders.contains_key(&path) {
            return false;
        }
        self.folders.insert(
            path,
            Folder {
                kind,
                service,
                loaded: false,
                children: BTreeMap::new(),
                left_out: HashMap::new(),
                changed: true,
            },
        );
        true
    }

    /// Follows `service`'s providers too (up to [`MAX_SERVICES`]); whether it is
    /// new.
    pub fn watch(&mut self, service: &ServiceName) -> bool {
        let path = self.layout.providers(service);
        let followed = self
            .folders
            .values()
            .filter(|f| f.service.is_some())
            .count();
        if followed >= MAX_SERVICES && !self.folders.contains_key(&path) {
            if !std::mem::replace(&mut self.full, true) {
                tracing::warn!(%service, max = MAX_SERVICES, "following the most services allowed: no more are followed");
            }
            return false;
        }
        self.add(path, Kind::Providers, Some(service.clone()))
    }

    /// The app whose config and switches are followed.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Every followed folder's path.
    pub fn paths(&self) -> Vec<String> {
        self.folders.keys().cloned().collect()
    }

    /// Sets a folder's children as just read (a missing folder reads as empty);
    /// whether that changed what the folder gives a snapshot (a first read does).
    /// A value read again as it was is kept as it was checked, not parsed again: a
    /// reconnect re-reads every folder, mostly unchanged.
    pub fn replace(&mut self, path: &str, children: Vec<(String, Vec<u8>)>) -> bool {
        self.replace_read(path, children, Vec::new())
    }

    /// [`Mirror::replace`], with the children this session may not read
    /// (`unreadable`, each with why): left out, and noted unless they were at the
    /// last read too.
    pub fn replace_read(
        &mut self,
        path: &str,
        children: Vec<(String, Vec<u8>)>,
        unreadable: Vec<(String, Why)>,
    ) -> bool {
        let Some(folder) = self.folders.get_mut(path) else {
            return false;
        };
        let mut old = std::mem::take(&mut folder.children);
        let was_left_out = std::mem::take(&mut folder.left_out);
        let mut same = folder.loaded;
        let (kind, addrs, fresh, ignored) =
            (folder.kind, &self.addrs, &mut self.fresh, &mut self.ignored);
        let left_out = &mut folder.left_out;
        for (name, why) in unreadable {
            same &= old.remove(&name).is_none();
            if was_left_out.get(&name) != Some(&None) {
                ignored.note(format!("{path}/{name}"), why);
            }
            left_out.insert(name, None);
        }
        let children = children
            .into_iter()
            .filter_map(|(name, data)| {
                match old.remove(&name) {
                    Some(v) if v.raw.as_bytes() == data => return Some((name, v)),
                    Some(_) => same = false,
                    None => {}
                }
                let print = Some(fingerprint(&data));
                if was_left_out.get(&name) == Some(&print) {
                    left_out.insert(name, print);
                    return None;
                }
                match check(kind, data, addrs) {
                    Ok(value) => {
                        same = false;
                        note_fresh(fresh, addrs, &value);
                        Some((name, value))
                    }
                    // Newly left out: if it had a value, that is gone (not the
                    // same).
                    Err(why) => {
                        ignored.note(format!("{path}/{name}"), why);
                        left_out.insert(name, print);
                        None
                    }
                }
            })
            .collect();
        same &= old.is_empty();
        folder.loaded = true;
        if same {
            folder.children = children;
        } else {
            *folder.children_mut() = children;
        }
        !same
    }

    /// Notes a node left out by the caller (one nested below a child).
    pub fn ignore(&mut self, path: String, why: Why) {
        self.ignored.note(path, why);
    }

    /// Logs the nodes left out since the last call, a line per reason (`within`:
    /// where they were read); how many there were.
    pub fn log_ignored(&mut self, within: &str) -> usize {
        self.ignored.log(within)
    }

    /// The folder and child name of `path`, when it is a child of a followed folder.
    pub fn split<'p>(&self, path: &'p str) -> Option<(&str, &'p str)> {
        let (folder, child) = path.rsplit_once('/')?;
        let (key, _) = self.folders.get_key_value(folder)?;
        Some((key.as_str(), child))
    }

    /// The followed folder that `path` lies below by more than one level: such a
    /// node is no key, switch or provider, and is not read.
    pub fn nested_in(&self, path: &str) -> Option<&str> {
        let (mut above, _) = path.rsplit_once('/')?;
        while let Some((up, _)) = above.rsplit_once('/') {
            if let Some((key, _)) = self.folders.get_key_value(up) {
                return Some(key);
            }
            above = up;
        }
        None
    }

    /// Sets one child's value; whether the mirror changed.
    pub fn set(&mut self, path: &str, data: Vec<u8>) -> bool {
        let Some((folder, child)) = self.split(path) else {
            return false;
        };
        let (folder, child) = (folder.to_string(), child.to_string());
        let f = self.folders.get_mut(&folder).expect("split found it");
        if f.children
            .get(&child)
            .is_some_and(|old| old.raw.as_bytes() == data)
        {
            return false;
        }
        let print = Some(fingerprint(&data));
        match check(f.kind, data, &self.addrs) {
            Ok(v) => {
                note_fresh(&mut self.fresh, &self.addrs, &v);
                f.left_out.remove(&child);
                f.children_mut().insert(child, v);
                true
            }
            Err(why) => {
                if f.left_out.insert(child.clone(), print) != Some(print) {
                    self.ignored.note(path.into(), why);
                }
                f.children.contains_key(&child) && f.children_mut().remove(&child).is_some()
            }
        }
    }

    /// Drops one child this session may not read (why: `why`), noted unless it
    /// was already; whether the mirror changed.
    pub fn unreadable(&mut self, path: &str, why: Why) -> bool {
        let Some((folder, child)) = self.split(path) else {
            return false;
        };
        let (folder, child) = (folder.to_string(), child.to_string());
        let f = self.folders.get_mut(&folder).expect("split found it");
        if f.left_out.insert(child.clone(), None) != Some(None) {
            self.ignored.note(path.into(), why);
        }
        f.children.contains_key(&child) && f.children_mut().remove(&child).is_some()
    }

    /// Removes one child, or empties a followed folder that was deleted; whether
    /// the mirror changed.
    pub fn remove(&mut self, path: &str) -> bool {
        if let Some(f) = self.folders.get_mut(path) {
            f.left_out.clear();
            let changed = !f.children.is_empty();
            if changed {
                f.children_mut().clear();
            }
            return changed;
        }
        let Some((folder, child)) = self.split(path) else {
            return false;
        };
        let (folder, child) = (folder.to_string(), child.to_string());
        let Some(f) = self.folders.get_mut(&folder) else {
            return false;
        };
        f.left_out.remove(&child);
        f.children.contains_key(&child) && f.children_mut().remove(&child).is_some()
    }

    /// The snapshot the mirror makes now: the parts of the last one that no
    /// change touched are shared with it (see the module docs).
    pub fn snapshot(&mut self, source: Source, version: u64, seen_at: SystemTime) -> Snapshot {
        let (folders, made) = (&mut self.folders, &mut self.made);
        let changed = |services: bool| {
            let mut all = folders.values();
            all.any(|f| f.changed && f.service.is_some() == services)
        };
        if changed(false) {
            // App values first, then the cluster's overrides on top.
            let (mut config, mut switches) = (BTreeMap::new(), BTreeMap::new());
            for cluster in [None, Some(self.cluster.as_str())] {
                if cluster.is_some() {
                    made.app_config = Arc::new(config.clone());
                    made.app_switches = Arc::new(switches.clone());
                }
                for kind in [Kind::Config, Kind::Switches] {
                    let path = self.layout.folder(&self.app, cluster, kind);
                    let target = match kind {
                        Kind::Config => &mut config,
                        _ => &mut switches,
                    };
                    if let Some(f) = folders.get(&path) {
                        for (k, v) in &f.children {
                            target.insert(k.clone(), v.raw.clone());
                        }
                    }
                }
            }
            (made.config, made.switches) = (Arc::new(config), Arc::new(switches));
        }
        if changed(true) {
            let services = Arc::make_mut(&mut made.services);
            for f in folders.values().filter(|f| f.changed) {
                let Some(service) = &f.service else { continue };
                let Some(list) = providers_of(f, &self.addrs) else {
                    services.remove(service);
                    continue;
                };
                let n = list.len();
                let before = services.insert(service.clone(), list);
                if before.is_none_or(|b| b.len() != n || b != services[service]) {
                    let told = self.told.entry(service.clone()).or_default();
                    told.change(service, n, Instant::now());
                }
            }
        }
        for f in folders.values_mut() {
            f.changed = false;
        }
        Snapshot {
            app: self.app.clone(),
            cluster: self.cluster.clone(),
            source,
            version,
            seen_at,
            config: made.config.clone(),
            switches: made.switches.clone(),
            app_config: made.app_config.clone(),
            app_switches: made.app_switches.clone(),
            services: made.services.clone(),
        }
    }

    /// Every provider host name (not an IP address) in use, with its port.
    pub fn names(&self) -> BTreeSet<Name> {
        let providers = self.folders.values().flat_map(|f| f.children.values());
        providers
            .filter_map(|v| v.provider.as_ref())
            .filter_map(name_of)
            .collect()
    }

    /// The host names of providers read since the last call that had not been
    /// looked up then (some may have been since, or be gone again).
    pub fn take_fresh(&mut self) -> Vec<Name> {
        std::mem::take(&mut self.fresh)
    }

    /// What the last lookup of `name` found: `None` before any, `Some(None)` when
    /// it has never resolved.
    pub fn looked_up(&self, name: &Name) -> Option<Option<SocketAddr>> {
        self.addrs.get(name).copied()
    }

    /// Takes what a lookup of `name` found (a failure leaves an address found
    /// before as it is): whether the snapshot changed, or `None` (nothing kept)
    /// when no provider has the name any more.
    pub fn learn(&mut self, name: &Name, found: Option<SocketAddr>) -> Option<bool> {
        let before = self.addrs.get(name).copied();
        let now = found.or(before.flatten());
        let (mut used, mut changed) = (false, before.is_none());
        for f in self.folders.values_mut() {
            let named = |v: &Value| {
                let p = v.provider.as_ref();
                p.is_some_and(|p| (&p.host, p.port) == (&name.0, name.1))
            };
            if !f.children.values().any(named) {
                continue;
            }
            // Whether its service waits for lookups may change too.
            let providers = f.children_mut().values_mut().filter(|v| named(v));
            for p in providers.filter_map(|v| v.provider.as_mut()) {
                used = true;
                changed |= p.addr != now;
                p.addr = now;
            }
        }
        if used {
            self.addrs.insert(name.clone(), now);
        }
        used.then_some(changed)
    }

    /// Forgets the lookups of names no provider has any more.
    pub fn forget_unused(&mut self) {
        let names = self.names();
        self.addrs.retain(|name, _| names.contains(name));
    }

    /// When the first change of providers held back from the log is due to be
    /// logged ([`Mirror::log_held`]).
    pub fn log_due(&self) -> Option<Instant> {
        let held = self.told.values().filter(|t| t.held.is_some());
        held.filter_map(|t| t.at).min().map(|at| at + INTERVAL)
    }

    /// Logs the changes of providers held back from the log whose interval has
    /// passed at `now`.
    pub fn log_held(&mut self, now: Instant) {
        for (service, told) in &mut self.told {
            told.flush(service, now);
        }
    }

    /// The disk cache's form.
    pub fn save(&self) -> Saved {
        Saved {
            root: self.layout.root().into(),
            folders: self
                .folders
                .iter()
                .filter(|(_, f)| f.loaded)
                .map(|(p, f)| {
                    let children = f.children.iter().map(|(k, v)| (k.clone(), v.raw.clone()));
                    (p.clone(), children.collect())
                })
                .collect(),
        }
    }

    /// Loads a saved form: folders under this root that are followed or are
    /// providers folders (a service called last time is followed again).
    pub fn restore(&mut self, saved: Saved) {
        if saved.root != self.layout.root() {
            tracing::warn!(cached = %saved.root, root = %self.layout.root(), "the disk cache is for another ZooKeeper root: not used");
            return;
        }
        for (path, children) in saved.folders {
            if !self.folders.contains_key(&path) {
                match self.service_of(&path) {
                    Some(s) => {
                        self.watch(&s);
                    }
                    None => continue,
                }
            }
            let children = children.into_iter().map(|(k, v)| (k, v.into_bytes()));
            self.replace(&path, children.collect());
        }
        self.log_ignored("the disk cache");
    }

    /// The service whose providers folder `path` is.
    fn service_of(&self, path: &str) -> Option<ServiceName> {
        let rest = path.strip_prefix(&self.layout.apps())?.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let (app, _, cluster, folder) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let s = ServiceName::new(app, cluster).ok()?;
        (parts.next().is_none() && folder == "providers" && self.layout.providers(&s) == path)
            .then_some(s)
    }
}

/// A provider host name and port.
pub type Name = (String, u16);

/// A service's provider changes in the log: logged by the governance thread, once
/// for the process (each core's clients used to log them, a line per core and
/// change), the first at once and those that follow within [`INTERVAL`] as one
/// line at its end, with the count as it is then. A change long after the line
/// before is logged at once.
#[derive(Debug, Clone, Default)]
struct Told {
    /// When a line was last logged.
    at: Option<Instant>,
    /// Held back: the providers with an address now, and how many changes.
    held: Option<(usize, u64)>,
}

impl Told {
    /// Notes a change to `n` providers with an address: logged now, or held until
    /// an interval has passed since the line before.
    fn change(&mut self, service: &ServiceName, n: usize, now: Instant) {
        let changes = self.held.map_or(0, |(_, c)| c);
        self.held = Some((n, changes + 1));
        self.flush(service, now);
    }

    /// Logs what is held, unless the line before is less than an interval before
    /// `now`.
    fn flush(&mut self, service: &ServiceName, now: Instant) {
        let Some((n, changes)) = self.held else {
            return;
        };
        if self.at.is_some_and(|at| now < at + INTERVAL) {
            return;
        }
        match changes {
            1 => tracing::info!("providers of {service}: {n} with an address"),
            _ => tracing::info!(
                "providers of {service}: {n} with an address ({changes} changes since the line before)"
            ),
        }
        (self.at, self.held) = (Some(now), None);
    }
}

/// A providers folder's part of a snapshot: its providers with an address, in
/// address order; `None` when it is not loaded yet (nor is a folder whose
/// providers are all host names not looked up yet).
fn providers_of(f: &Folder, addrs: &HashMap<Name, Option<SocketAddr>>) -> Option<Arc<[Provider]>> {
    if !f.loaded {
        return None;
    }
    let providers = f.children.values().filter_map(|v| v.provider.as_ref());
    let mut reachable = Vec::with_capacity(f.children.len());
    reachable.extend(providers.clone().filter(|p| p.addr.is_some()));
    // In address order, as a client keeps its nodes: each core's clients take it
    // as it is, with no sort of their own. References are sorted, then cloned once
    // into the list: a list of thousands built by growing a vector and moved into
    // the `Arc` took a large allocation, page faults and two copies at every change.
    reachable.sort_unstable_by_key(|p| (p.addr, p.weight));
    // Only a provider without an address can wait for a lookup (parsing every
    // host to tell took a tenth of a large service's snapshot).
    let pending = providers
        .filter(|p| p.addr.is_none())
        .filter_map(name_of)
        .any(|n| !addrs.contains_key(&n));
    (!reachable.is_empty() || !pending).then(|| reachable.into_iter().cloned().collect())
}

/// `p`'s host name and port, when its host is not an IP address.
fn name_of(p: &Provider) -> Option<Name> {
    p.host
        .parse::<IpAddr>()
        .is_err()
        .then(|| (p.host.clone(), p.port))
}

/// Notes `value`'s host name in `fresh` when it is a provider's that `addrs` has
/// no lookup of.
fn note_fresh(fresh: &mut Vec<Name>, addrs: &HashMap<Name, Option<SocketAddr>>, value: &Value) {
    let name = value.provider.as_ref().and_then(name_of);
    if let Some(name) = name.filter(|n| !addrs.contains_key(n)) {
        fresh.push(name);
    }
}

/// A value's fingerprint: tells a node left out again with the same value.
fn fingerprint(data: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

/// Checks one value: UTF-8, and for a provider, valid JSON with a host and port;
/// a provider's address is its host's if that is an IP address, else the one last
/// looked up for it in `addrs` (none yet: the lookup happens off this thread).
fn check(
    kind: Kind,
    data: Vec<u8>,
    addrs: &HashMap<Name, Option<SocketAddr>>,
) -> Result<Value, Why> {
    let raw = String::from_utf8(data).map_err(|_| Why::NotUtf8)?;
    let provider = match kind {
        Kind::Providers => {
            let mut p = serde_json::from_str::<Provider>(&raw)
                .map_err(|e| Why::NotProvider(e.to_string()))?;
            p.addr = match p.host.parse::<IpAddr>() {
                Ok(ip) => Some(SocketAddr::new(ip, p.port)),
                Err(_) => addrs.get(&(p.host.clone(), p.port)).copied().flatten(),
            };
            Some(p)
        }
        Kind::Switches => {
            Switch::parse(&raw).map_err(Why::NotSwitch)?;
            None
        }
        Kind::Config => None,
    };
    Ok(Value { raw, provider })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror() -> Mirror {
        Mirror::new(Layout::new("/r").unwrap(), "demo", "main")
    }

    #[test]
    fn cluster_values_override_app_values_and_deleting_falls_back() {
        let mut m = mirror();
        assert!(m.set("/r/apps/demo/config/k", b"app".to_vec()));
        assert!(m.set("/r/apps/demo/clusters/main/config/k", b"cluster".to_vec()));
        assert!(!m.set("/r/apps/demo/clusters/other/config/k", b"no".to_vec()));
        assert!(!m.set("/r/apps/other/config/k", b"no".to_vec()));
        let now = SystemTime::now();
        assert_eq!(
            m.snapshot(Source::ZooKeeper, 1, now).config_str("k"),
            Some("cluster")
        );
        assert!(m.remove("/r/apps/demo/clusters/main/config/k"));
        assert_eq!(
            m.snapshot(Source::ZooKeeper, 2, now).config_str("k"),
            Some("app")
        );
        assert!(m.remove("/r/apps/demo/config"), "a deleted folder empties");
        assert_eq!(m.snapshot(Source::ZooKeeper, 3, now).config_str("k"), None);
    }

    #[test]
    fn bad_values_are_left_out_and_the_rest_stands() {
        let mut m = mirror();
        let svc: ServiceName = "demo/main".parse().unwrap();
        let dir = "/r/apps/demo/clusters/main/providers";
        m.replace(
            dir,
            vec![
                (
                    "127.0.0.1:1".into(),
                    br#"{"host":"127.0.0.1","port":1,"weight":5}"#.to_vec(),
                ),
                ("bad:2".into(), b"{not json".to_vec()),
                ("utf:3".into(), vec![0xff, 0xfe]),
            ],
        );
        assert!(!m.set("/r/apps/demo/config/k", vec![0xc3]));
        // A cluster's switch that is not one: left out, so the app-wide value stands.
        assert!(m.set("/r/apps/demo/switches/s", b"on".to_vec()));
        assert!(!m.set("/r/apps/demo/clusters/main/switches/s", b"maybe".to_vec()));
        assert_eq!(m.log_ignored("the test"), 4, "each one noted");
        let snap = m.snapshot(Source::ZooKeeper, 1, SystemTime::now());
        let ps = snap.providers(&svc).unwrap();
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].weight, 5);
        assert_eq!(ps[0].addr, Some("127.0.0.1:1".parse().unwrap()));
        assert!(snap.config.is_empty());
        assert!(snap.switch_on("s", false));
        assert!(
            snap.providers(&"x/y".parse().unwrap()).is_none(),
            "not loaded"
        );
    }

    #[test]
    fn a_node_below_a_child_is_named_with_its_folder() {
        let m = mirror();
        assert_eq!(
            m.nested_in("/r/apps/demo/config/db/host"),
            Some("/r/apps/demo/config")
        );
        assert_eq!(
            m.nested_in("/r/apps/demo/clusters/main/switches/a/b/c"),
            Some("/r/apps/demo/clusters/main/switches")
        );
        assert_eq!(m.nested_in("/r/apps/demo/config/db"), None, "a child");
        assert_eq!(m.nested_in("/r/apps/demo/config"), None, "the folder");
        assert_eq!(m.nested_in("/r/apps/demo/config-x/a/b"), None);
        assert_eq!(m.nested_in("/r/apps/other/config/a/b"), None);
    }

    #[test]
    fn the_services_followed_are_bounded() {
        let mut m = mirror();
        for i in 0..MAX_SERVICES + 10 {
            m.watch(&format!("a{i}/c").parse().unwrap());
        }
        assert_eq!(
            m.folders.values().filter(|f| f.service.is_some()).count(),
            MAX_SERVICES
        );
        assert!(!m.watch(&"new/one".parse().unwrap()));
    }

    #[test]
    fn a_saved_mirror_restores_with_the_services_it_followed() {
        let mut m = mirror();
        let other: ServiceName = "up/stream".parse().unwrap();
        m.watch(&other);
        m.replace(
            "/r/apps/up/clusters/stream/providers",
            vec![("h:1".into(), br#"{"host":"127.0.0.2","port":1}"#.to_vec())],
        );
        m.replace("/r/apps/demo/switches", vec![("s".into(), b"on".to_vec())]);
        let saved = serde_json::to_string(&m.save()).unwrap();
        let mut fresh = mirror();
        fresh.restore(serde_json::from_str(&saved).unwrap());
        let snap = fresh.snapshot(Source::Cache, 1, SystemTime::now());
        assert_eq!(snap.providers(&other).unwrap().len(), 1);
        assert!(snap.switch_on("s", false));
        let mut elsewhere = Mirror::new(Layout::new("/other").unwrap(), "demo", "main");
        elsewhere.restore(serde_json::from_str(&saved).unwrap());
        assert!(elsewhere
            .snapshot(Source::Cache, 1, SystemTime::now())
            .switches
            .is_empty());
    }

    /// A reconnect re-reads every folder: a read that finds what the folder holds
    /// changes nothing (its part of the next snapshot stays shared), whatever it
    /// holds that is left out; any value new, changed, gone or newly left out does.
    #[test]
    fn a_folder_read_again_as_it_was_is_unchanged() {
        let mut m = mirror();
        let dir = "/r/apps/demo/switches";
        let read = |pairs: &[(&str, &str)]| -> Vec<(String, Vec<u8>)> {
            let pairs = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()));
            pairs.collect()
        };
        assert!(m.replace(dir, read(&[])), "a first read, even of nothing");
        assert!(!m.replace(dir, read(&[])));
        let held = [("a", "on"), ("b", "off"), ("bad", "maybe")];
        assert!(m.replace(dir, read(&held)));
        m.snapshot(Source::ZooKeeper, 1, SystemTime::now());
        assert!(!m.replace(dir, read(&held)), "read again as it was");
        assert!(!m.folders[dir].changed, "not marked for the next snapshot");
        assert_eq!(m.log_ignored("the test"), 1, "the bad one noted once");
        let bad = format!("{dir}/bad");
        assert!(!m.set(&bad, b"maybe".to_vec()));
        assert_eq!(
            m.log_ignored("the test"),
            0,
            "nor when an event brings it again"
        );
        assert!(!m.set(&bad, b"perhaps".to_vec()));
        assert!(
            !m.folders[dir].changed,
            "nothing it gives a snapshot changed"
        );
        assert!(!m.replace(dir, read(&[("a", "on"), ("b", "off"), ("bad", "nah")])));
        assert_eq!(m.log_ignored("the test"), 2, "each new bad value noted");
        m.snapshot(Source::ZooKeeper, 1, SystemTime::now());
        let empty = "/r/apps/demo/config";
        assert!(
            !m.set(&format!("{dir}/a"), b"on".to_vec()),
            "the same value"
        );
        assert!(!m.remove(&format!("{dir}/none")), "a child it never had");
        assert!(!m.remove(empty), "an empty folder deleted");
        assert!(!m.folders[dir].changed && !m.folders[empty].changed);
        let changes: [&[(&str, &str)]; 4] = [
            &[("a", "on"), ("b", "on"), ("bad", "maybe")],
            &[("a", "on"), ("bad", "maybe")],
            &[("a", "on"), ("b", "off"), ("c", "on"), ("bad", "maybe")],
            &[("a", "on"), ("b", "what")],
        ];
        for change in changes {
            m.replace(dir, read(&held));
            m.snapshot(Source::ZooKeeper, 1, SystemTime::now());
            assert!(m.replace(dir, read(change)), "{change:?}");
            assert!(m.folders[dir].changed, "{change:?}");
        }
    }

    /// A node this session may not read is left out and noted once while it stays
    /// so, at re-reads and events alike; its value, if it had one, is gone (a
    /// change); readable again, it is back.
    #[test]
    fn an_unreadable_node_is_left_out_and_noted_once_while_it_stays_so() {
        let mut m = mirror();
        let dir = "/r/apps/demo/config";
        let (a, b) = (
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        );
        let refused = || vec![("b".to_string(), Why::Unreadable("not authorized".into()))];
        assert!(m.replace(dir, vec![a.clone(), b.clone()]));
        assert!(
            m.replace_read(dir, vec![a.clone()], refused()),
            "b's value gone"
        );
        assert!(!m.folders[dir].children.contains_key("b"));
        assert_eq!(m.log_ignored("the test"), 1);
        assert!(
            !m.replace_read(dir, vec![a.clone()], refused()),
            "read again as it was"
        );
        assert!(!m.unreadable(&format!("{dir}/b"), refused().remove(0).1));
        assert_eq!(m.log_ignored("the test"), 0, "not noted again");
        assert!(m.replace(dir, vec![a.clone(), b.clone()]), "readable again");
        assert!(m.folders[dir].children.contains_key("b"));
        assert!(
            m.unreadable(&format!("{dir}/b"), refused().remove(0).1),
            "shut by an event's read"
        );
        assert_eq!(m.log_ignored("the test"), 1);
        assert!(!m.replace_read(dir, vec![a], refused()));
        assert_eq!(m.log_ignored("the test"), 0);
    }

    /// A change of a service's providers is logged by the governance thread, once
    /// for the process; while they churn, the first change at once and the rest
    /// of an interval as one line at its end, with the count as it is then.
    #[test]
    fn provider_changes_are_logged_a_line_per_interval() {
        use std::sync::Mutex;
        use tracing_subscriber::layer::{Context, SubscriberExt};
        /// Collects the INFO lines' messages.
        struct Lines(Arc<Mutex<Vec<String>>>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
            fn on_event(&self, e: &tracing::Event<'_>, _: Context<'_, S>) {
                struct Message<'a>(&'a mut String);
                impl tracing::field::Visit for Message<'_> {
                    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                        if f.name() == "message" {
                            *self.0 = format!("{v:?}");
                        }
                    }
                }
                if *e.metadata().level() == tracing::Level::INFO {
                    let mut line = String::new();
                    e.record(&mut Message(&mut line));
                    self.0.lock().unwrap().push(line);
                }
            }
        }
        let lines = Arc::new(Mutex::new(Vec::new()));
        let taken = || std::mem::take(&mut *lines.lock().unwrap());
        let subscriber = tracing_subscriber::registry().with(Lines(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let mut m = mirror();
            let (a, b): (ServiceName, ServiceName) =
                ("a/c".parse().unwrap(), "b/c".parse().unwrap());
            for s in [&a, &b] {
                m.watch(s);
            }
            let provider = |i: usize| {
                let json = format!(r#"{{"host":"127.0.0.{i}","port":1}}"#);
                (format!("p{i}:1"), json.into_bytes())
            };
            let churn = |m: &mut Mirror, s: &ServiceName, n: usize| {
                let dir = m.layout.providers(s);
                m.replace(&dir, (1..=n).map(provider).collect());
                m.snapshot(Source::ZooKeeper, 1, SystemTime::now());
            };
            for n in 1..50 {
                churn(&mut m, &a, n);
            }
            churn(&mut m, &b, 7);
            assert_eq!(
                taken(),
                [
                    "providers of a/c: 1 with an address",
                    "providers of b/c: 7 with an address"
                ]
            );
            let due = m.log_due().expect("a/c's last 48 changes held");
            m.log_held(due - std::time::Duration::from_millis(1));
            assert!(taken().is_empty(), "not due yet");
            m.log_held(due);
            assert_eq!(
                taken(),
                ["providers of a/c: 49 with an address (48 changes since the line before)"]
            );
            assert_eq!(m.log_due(), None, "nothing held");
            let dir = m.layout.providers(&b);
            m.replace(&dir, (1..=7).map(provider).collect());
            m.snapshot(Source::ZooKeeper, 1, SystemTime::now());
            assert_eq!(m.log_due(), None, "the same list: no change to log");
            // A change after the interval, its held one never flushed: logged at
            // once, counting both.
            let (mut told, t0) = (Told::default(), Instant::now());
            told.change(&a, 1, t0);
            told.change(&a, 2, t0 + std::time::Duration::from_secs(1));
            told.change(&a, 3, t0 + INTERVAL);
            assert_eq!(told.held, None);
            assert_eq!(
                taken(),
                [
                    "providers of a/c: 1 with an address",
                    "providers of a/c: 3 with an address (2 changes since the line before)"
                ]
            );
        });
    }

    #[test]
    fn a_snapshot_shares_every_part_no_change_touched() {
        let mut m = mirror();
        let (a, b): (ServiceName, ServiceName) = ("a/c".parse().unwrap(), "b/c".parse().unwrap());
        let provider = |host: &str| format!(r#"{{"host":"{host}","port":1}}"#).into_bytes();
        for s in [&a, &b] {
            m.watch(s);
            let dir = m.layout.providers(s);
            m.replace(&dir, vec![("p:1".into(), provider("127.0.0.1"))]);
        }
        m.replace(
            "/r/apps/a/clusters/c/providers",
            vec![("n:1".into(), provider("one.test"))],
        );
        assert!(
            m.learn(
                &("one.test".into(), 1),
                Some("127.0.0.9:1".parse().unwrap())
            ) == Some(true)
        );
        let now = SystemTime::now();
        let first = m.snapshot(Source::ZooKeeper, 1, now);
        let shared = |x: &Snapshot, y: &Snapshot, s: &ServiceName| {
            Arc::ptr_eq(&x.services[s], &y.services[s])
        };
        // A config value: the providers stay the same lists.
        assert!(m.set("/r/apps/demo/config/k", b"v".to_vec()));
        let second = m.snapshot(Source::ZooKeeper, 2, now);
        assert_eq!(second.config_str("k"), Some("v"));
        assert!(Arc::ptr_eq(&first.services, &second.services));
        // One service's providers: the other's list and the config stay.
        assert!(m.set("/r/apps/b/clusters/c/providers/p:2", provider("127.0.0.2")));
        let third = m.snapshot(Source::ZooKeeper, 3, now);
        assert_eq!(third.providers(&b).unwrap().len(), 2);
        assert!(shared(&second, &third, &a) && !shared(&second, &third, &b));
        assert!(Arc::ptr_eq(&second.config, &third.config));
        // A host name's new address: the service that uses it only.
        assert!(
            m.learn(
                &("one.test".into(), 1),
                Some("127.0.0.8:1".parse().unwrap())
            ) == Some(true)
        );
        let fourth = m.snapshot(Source::ZooKeeper, 4, now);
        assert_eq!(
            fourth.providers(&a).unwrap()[0].addr,
            Some("127.0.0.8:1".parse().unwrap())
        );
        assert!(!shared(&third, &fourth, &a) && shared(&third, &fourth, &b));
        // Emptied: loaded, with no providers.
        assert!(m.remove("/r/apps/a/clusters/c/providers"));
        let fifth = m.snapshot(Source::ZooKeeper, 5, now);
        assert_eq!(fifth.providers(&a).map(<[Provider]>::len), Some(0));
        assert!(shared(&fourth, &fifth, &b));
    }
}
