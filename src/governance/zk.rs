//! The ZooKeeper session loop: connect (abandoning a connect or handshake that gets
//! no answer), follow every folder with a persistent recursive watch, re-read
//! everything after every reconnect (events can be lost across one) and on every
//! new session, keep the registration alive (registered again when someone else
//! deletes its node), and boot from the disk cache when ZooKeeper does not answer
//! at start, or is too old to watch (before 3.6).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use zookeeper_client as zk;
use zookeeper_client::{AddWatchMode, CreateMode, EventType, SessionState, WatchedEvent};

use super::auth::{self, ZkAuth};
use super::connect;
use super::ignored::{Tally, Why};
use super::keeper::{sleep_until_some, Keeper};
use super::layout::Layout;
use super::mirror::Mirror;
use super::registrar::ping;
use super::tls::{self, ZkTls};
use super::Command;
use crate::control::Source;
use crate::logs::throttle::{log_throttled, warn_throttled, Throttle};
use tracing::Level;

/// The most watch events applied together: their nodes are read in one round
/// trip, and a storm of changes is published at least every this many events.
const MAX_BATCH: usize = 1024;

/// How often a registration whose health check failed is tried again.
const RETRY_REGISTER: Duration = Duration::from_millis(200);
/// The longest wait between connect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long to wait before trying a server too old to watch again (it may be
/// upgraded, or the next connect may reach a newer one of its ensemble).
const TOO_OLD_RETRY: Duration = Duration::from_secs(30);

/// How often a session looks whether its TLS files changed, for the client's
/// next connection (a reconnect to another server); each connect attempt
/// without a session looks too.
const TLS_RECHECK: Duration = Duration::from_secs(10);

/// How a session ended.
enum End {
    /// Expired or closed by the server: build a new one.
    Lost,
    /// The server does not know `addWatch` (ZooKeeper before 3.6): try again
    /// after [`TOO_OLD_RETRY`].
    TooOld,
    /// Nobody can ask anything any more.
    Stopped,
}

/// ZooKeeper answered a watch with "unimplemented operation": it is older than
/// 3.6, which brought the persistent watches governance follows its folders with.
/// Such a server also drops the connection, so going on would reconnect and fail
/// again in a tight loop.
struct TooOld;

/// Runs until the process ends (see the module docs).
pub async fn run(mut k: Keeper, hosts: String, mut commands: UnboundedReceiver<Command>) {
    let opts = k_options(&k);
    // Until the first session or the boot wait, nothing is published: the server
    // waits (load before listen). At the boot wait, the disk cache is served.
    let mut boot = Some(tokio::time::Instant::now() + opts.boot_wait);
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u32;
    // Why no session can be made, when a probe finds it (at the failures that
    // are logged).
    let mut cause: Option<String> = None;
    let flaps = Flaps::default();
    loop {
        let connector = auth::connector(opts.session_timeout, &opts.auth);
        let attempt = tls::connect(connector, &hosts, opts.tls.as_ref());
        let attempt = tokio::time::timeout(opts.connect_timeout, attempt);
        let Some(connected) = offline(&mut k, &mut commands, &mut boot, attempt).await else {
            return;
        };
        // Whether a probe may say more (not when the session said why).
        let mut probe = true;
        let why = match connected {
            Ok(Ok(client)) => {
                cause = None;
                let booting = boot.take();
                let end = session(&mut k, client, &mut commands, &flaps).await;
                k.flush();
                match end {
                    End::Lost => {
                        failures = 0;
                        backoff = Duration::from_millis(100);
                        continue;
                    }
                    End::Stopped => return,
                    End::TooOld => {
                        // Nothing was read: a start serves its disk cache now.
                        boot = booting.map(|_| tokio::time::Instant::now());
                        backoff = TOO_OLD_RETRY;
                        probe = false;
                        format!(
                            "ZooKeeper at {hosts} does not know addWatch: {}",
                            auth::TOO_OLD
                        )
                    }
                }
            }
            Ok(Err(e)) => auth::connect_error(&e, &hosts, &opts.auth),
            Err(_) => format!(
                "cannot reach ZooKeeper at {hosts}: no answer within {:?}",
                opts.connect_timeout
            ),
        };
        failures += 1;
        let loud = failures == 1 || failures % 10 == 0;
        if loud && probe {
            let (at, wait, tls) = (hosts.clone(), opts.connect_timeout, opts.tls.clone());
            let probe =
                tokio::task::spawn_blocking(move || connect::diagnose(&at, tls.as_ref(), wait));
            let Some(found) = offline(&mut k, &mut commands, &mut boot, probe).await else {
                return;
            };
            cause = found.ok().flatten();
        }
        let why = match &cause {
            Some(cause) => format!("{why}; {cause}"),
            None => why,
        };
        k.status(|s| s.error = Some(why.clone()));
        if loud {
            tracing::warn!(
                attempts = failures,
                "{why}: serving from what the process has, retrying"
            );
        }
        if offline(
            &mut k,
            &mut commands,
            &mut boot,
            tokio::time::sleep(backoff),
        )
        .await
        .is_none()
        {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Awaits `f` with no session: commands are remembered for the next session, and
/// at the boot deadline the disk cache is served. `None` when nobody can ask
/// anything any more.
async fn offline<F: std::future::Future>(
    k: &mut Keeper,
    commands: &mut UnboundedReceiver<Command>,
    boot: &mut Option<tokio::time::Instant>,
    f: F,
) -> Option<F::Output> {
    tokio::pin!(f);
    loop {
        k.look_up();
        let deadline = *boot;
        let due = k.due();
        tokio::select! {
            out = &mut f => return Some(out),
            event = k.resolver.next() => k.resolved(event),
            _ = sleep_until_some(due), if due.is_some() => k.flush_due(),
            cmd = commands.recv() => remember(k, cmd?),
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                *boot = None;
                if k.load_cache() {
                    tracing::warn!("no usable ZooKeeper session at start: serving from the disk cache");
                    k.publish(Source::Cache, SystemTime::now());
                } else {
                    tracing::warn!("no usable ZooKeeper session at start and no disk cache: serving with no config, switches or providers until there is one");
                    k.publish(Source::Empty, SystemTime::now());
                }
            }
        }
    }
}

struct Opts {
    session_timeout: Duration,
    connect_timeout: Duration,
    boot_wait: Duration,
    auth: Vec<ZkAuth>,
    tls: Option<ZkTls>,
}

fn k_options(k: &Keeper) -> Opts {
    let o = k.options();
    Opts {
        session_timeout: o.session_timeout,
        connect_timeout: o.connect_timeout,
        boot_wait: o.boot_wait,
        auth: o.zk_auth.clone(),
        tls: o.zk_tls.clone(),
    }
}

/// A command while there is no session: remembered for the next one.
fn remember(k: &mut Keeper, cmd: Command) {
    match cmd {
        Command::Watch(s) => {
            k.mirror.watch(&s);
        }
        Command::Register(r) => k.want(r),
        Command::Yield => k.yielded = true,
        Command::Deregister { ack, .. } => {
            // An ephemeral node of a lost connection goes with its session.
            if k.registration.take().is_some() {
                tracing::info!(
                    "no ZooKeeper session: the provider node goes with the one that ended"
                );
            }
            let _ = ack.send(false);
        }
    }
}

/// A connection lost and back, each logged at most a line per 10 s, whatever
/// number of times a flapping network drops it.
#[derive(Default)]
struct Flaps {
    lost: Throttle,
    back: Throttle,
}

/// Serves one session until it is lost.
async fn session(
    k: &mut Keeper,
    client: zk::Client,
    commands: &mut UnboundedReceiver<Command>,
    flaps: &Flaps,
) -> End {
    let id = client.session_id().0;
    tracing::info!(
        session = format!("{id:#x}"),
        "ZooKeeper session established"
    );
    k.status(|s| {
        s.connected = true;
        s.session = Some(id);
        s.error = None;
    });
    let mut states = client.state_watcher();
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let mut watches = Watches::default();
    if watches.all(&client, k, &events_tx).await.is_err() {
        return too_old(k);
    }
    reread(&client, k).await;
    let mut attempts = Attempts::default();
    let mut registered = attempts.note(ensure_registered(&client, k).await, k);
    let tls = k.options().zk_tls.clone();
    let mut recheck = tokio::time::interval(TLS_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        k.look_up();
        let due = k.due();
        tokio::select! {
            event = k.resolver.next() => k.resolved(event),
            _ = recheck.tick(), if tls.is_some() => tls.iter().for_each(ZkTls::reload),
            _ = sleep_until_some(due), if due.is_some() => k.flush_due(),
            Some(ev) = events.recv() => {
                let seen = SystemTime::now();
                let own = k.registration_path();
                let mut batch = vec![ev];
                while batch.len() < MAX_BATCH {
                    let Ok(ev) = events.try_recv() else { break };
                    batch.push(ev);
                }
                let own_deleted = batch.iter().any(|ev| {
                    ev.event_type == EventType::NodeDeleted && own.as_deref() == Some(ev.path.as_str())
                });
                let changed = apply(&client, k, batch).await;
                if changed {
                    k.publish(Source::ZooKeeper, seen);
                    k.save();
                }
                if own_deleted {
                    registered = attempts.note(restore_registration(&client, k).await, k);
                }
            }
            state = states.changed() => match state {
                SessionState::Disconnected => {
                    k.status(|s| s.connected = false);
                    warn_throttled!(flaps.lost, "ZooKeeper connection lost: serving from the mirror while the client reconnects");
                }
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                    k.status(|s| s.connected = true);
                    log_throttled!(Level::INFO, flaps.back, "ZooKeeper connection back: re-watching and re-reading everything");
                    if watches.all(&client, k, &events_tx).await.is_err() {
                        return too_old(k);
                    }
                    reread(&client, k).await;
                    registered = attempts.note(ensure_registered(&client, k).await, k);
                }
                lost => {
                    k.status(|s| *s = Default::default());
                    tracing::warn!(state = %lost, "ZooKeeper session ended: starting a new one (re-register, re-watch, re-read)");
                    return End::Lost;
                }
            },
            cmd = commands.recv() => match cmd {
                None => return End::Stopped,
                Some(Command::Watch(s)) => {
                    if k.mirror.watch(&s) {
                        let path = k.mirror.layout().providers(&s);
                        if watches.add(&client, &path, &events_tx).await.is_err() {
                            return too_old(k);
                        }
                        let auth = k.options().zk_auth.clone();
                        if load_folder(&client, &auth, &mut k.mirror, &path).await {
                            k.publish(Source::ZooKeeper, SystemTime::now());
                            k.save();
                        }
                    }
                }
                Some(Command::Register(r)) => {
                    k.want(r);
                    if watches.registration(&client, k, &events_tx).await.is_err() {
                        return too_old(k);
                    }
                    registered = attempts.note(ensure_registered(&client, k).await, k);
                }
                Some(Command::Yield) => k.yielded = true,
                Some(Command::Deregister { ack, successor }) => {
                    let left = match successor {
                        Some(wait) => left_to_successor(&client, k, wait).await,
                        None => false,
                    };
                    let had = !left && deregister(&client, k).await;
                    registered = attempts.note(Ok(()), k);
                    // The process is about to exit: what is held goes now.
                    k.flush();
                    let _ = ack.send(had);
                }
            },
            _ = tokio::time::sleep(RETRY_REGISTER), if !registered => {
                registered = attempts.note(ensure_registered(&client, k).await, k);
            }
        }
    }
}

/// Ends a session with a server too old to watch: its status cleared, as for a
/// lost session; the caller says why and tries again later.
fn too_old(k: &Keeper) -> End {
    k.status(|s| *s = Default::default());
    End::TooOld
}

/// Consecutive registration attempts that failed, logged without flooding: each at
/// debug, the 5th (a second of trying) and every 25th after it at WARN with its
/// reason.
#[derive(Default)]
struct Attempts(u32);

impl Attempts {
    /// Counts an attempt's outcome and reports it in `k`'s status; whether it
    /// registered.
    fn note(&mut self, outcome: Result<(), String>, k: &Keeper) -> bool {
        let Err(why) = outcome else {
            self.0 = 0;
            k.status(|s| s.error = None);
            return true;
        };
        k.status(|s| s.error = Some(why.clone()));
        self.0 += 1;
        if self.0 % 25 == 5 {
            tracing::warn!(tries = self.0, error = %why, "not registered yet: trying again every {RETRY_REGISTER:?}");
        } else {
            tracing::debug!(tries = self.0, error = %why, "not registered yet");
        }
        false
    }
}

/// Creates `client`'s chroot (the connect string's `/chroot`) when it is missing,
/// before a write, as Curator does its namespace: ZooKeeper creates nothing under a
/// chroot that does not exist. Readers never create it (a mistyped chroot stays
/// absent). Made with the ACL of credentials `auth`. Whether it created it; else
/// why it could not.
pub(super) async fn make_chroot(client: &zk::Client, auth: &[ZkAuth]) -> Result<bool, String> {
    let chroot = client.path();
    if chroot == "/" {
        return Ok(false);
    }
    let root = client.clone().chroot("/").unwrap_or_else(|same| same);
    let dir = CreateMode::Persistent.with_acls(auth::folder_acls(auth));
    let made = match root.check_stat(chroot).await {
        Ok(Some(_)) => Ok(false),
        Ok(None) => root.mkdir(chroot, &dir).await.map(|()| true),
        Err(e) => Err(e),
    };
    made.map_err(|e| {
        format!(
            "cannot create the chroot {chroot}: {}",
            auth::explain(&e, auth)
        )
    })
}

/// Makes `folder`, one of an app's (`<root>/apps/<app>/…`), when it is missing:
/// what is missing of `<root>/apps` with the shared folders' ACL, the app's own
/// folders with its nodes' ACL ([`auth`]). Nothing is created when the folder is
/// there: ZooKeeper checks the right to create before whether a node exists, so
/// making an existing folder could be refused where adding to it is not.
pub(super) async fn make_app_folder(
    client: &zk::Client,
    layout: &Layout,
    folder: &str,
    auth: &[ZkAuth],
) -> Result<(), zk::Error> {
    if client.check_stat(folder).await?.is_some() {
        return Ok(());
    }
    let apps = layout.apps();
    if client.check_stat(&apps).await?.is_none() {
        let shared = CreateMode::Persistent.with_acls(auth::folder_acls(auth));
        client.mkdir(&apps, &shared).await?;
    }
    let own = CreateMode::Persistent.with_acls(auth::node_acls(auth));
    client.mkdir(folder, &own).await
}

/// The session's persistent recursive watches, one per followed folder, each
/// forwarded to the session loop by a task.
///
/// zookeeper-client 0.11.2 does not re-send persistent watches when it reconnects
/// (its `resend_watches` keeps the SetWatches index at 0, so only one-shot watches
/// go out), so after every reconnect each folder is watched again: the new watch
/// is added first, then the old one is dropped (the client sends no removal while
/// another watcher holds the path).
#[derive(Default)]
struct Watches(HashMap<String, JoinHandle<()>>);

impl Watches {
    /// Watches every followed folder and the wanted registration (again).
    async fn all(
        &mut self,
        client: &zk::Client,
        k: &Keeper,
        tx: &UnboundedSender<WatchedEvent>,
    ) -> Result<(), TooOld> {
        for path in k.mirror.paths() {
            self.add(client, &path, tx).await?;
        }
        self.registration(client, k, tx).await
    }

    /// Watches `path` and everything under it (again); events go to `tx`.
    async fn add(
        &mut self,
        client: &zk::Client,
        path: &str,
        tx: &UnboundedSender<WatchedEvent>,
    ) -> Result<(), TooOld> {
        self.add_in(client, path, AddWatchMode::PersistentRecursive, tx)
            .await
    }

    /// Watches the wanted registration's node (again), so that its deletion by
    /// someone else is seen; events go to `tx`.
    async fn registration(
        &mut self,
        client: &zk::Client,
        k: &Keeper,
        tx: &UnboundedSender<WatchedEvent>,
    ) -> Result<(), TooOld> {
        match k.registration_path() {
            Some(path) => {
                self.add_in(client, &path, AddWatchMode::Persistent, tx)
                    .await
            }
            None => Ok(()),
        }
    }

    async fn add_in(
        &mut self,
        client: &zk::Client,
        path: &str,
        mode: AddWatchMode,
        tx: &UnboundedSender<WatchedEvent>,
    ) -> Result<(), TooOld> {
        let mut w = match client.watch(path, mode).await {
            Ok(w) => w,
            Err(zk::Error::Unimplemented) => return Err(TooOld),
            Err(e) => {
                tracing::warn!(%path, error = %e, "cannot watch: re-watched on the next reconnect");
                return Ok(());
            }
        };
        let tx = tx.clone();
        let task = tokio::spawn(async move {
            loop {
                let ev = w.changed().await;
                // The watcher panics if polled after a terminal session event.
                let end = ev.event_type == EventType::Session && ev.session_state.is_terminated();
                if tx.send(ev).is_err() || end {
                    break;
                }
            }
        });
        if let Some(old) = self.0.insert(path.to_string(), task) {
            old.abort();
        }
        Ok(())
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in self.0.values() {
            task.abort();
        }
    }
}

/// Re-reads every followed folder, then publishes and saves what changed.
async fn reread(client: &zk::Client, k: &mut Keeper) {
    let seen = SystemTime::now();
    let mut changed = false;
    let auth = k.options().zk_auth.clone();
    for path in k.mirror.paths() {
        changed |= load_folder(client, &auth, &mut k.mirror, &path).await;
    }
    // A reconnect mostly finds what the mirror holds: then the cores, the control
    // threads and the disk cache already have it, unless what they have came from
    // elsewhere (the disk cache) or nothing was published yet.
    if changed || !k.publishes(Source::ZooKeeper) {
        k.publish(Source::ZooKeeper, seen);
        k.save();
    }
    tracing::debug!(folders = k.mirror.paths().len(), changed, "re-read done");
}

/// Reads a folder's children and their values into `mirror` (a missing folder is
/// empty) and logs the nodes left out; whether the folder changed (not when
/// ZooKeeper could not be read: the mirror keeps what it had). A child whose ACL
/// refuses this session (`auth`) is left out, not the folder.
async fn load_folder(
    client: &zk::Client,
    auth: &[ZkAuth],
    mirror: &mut Mirror,
    path: &str,
) -> bool {
    let names = match client.list_children(path).await {
        Ok(n) => n,
        Err(zk::Error::NoNode) => Vec::new(),
        Err(e) => {
            let error = auth::explain(&e, auth);
            tracing::warn!(%path, %error, "cannot read: keeping the previous values");
            return false;
        }
    };
    // The requests go out as the futures are made: one round trip for the folder.
    let reads: Vec<_> = names
        .iter()
        .map(|n| client.get_data(&format!("{path}/{n}")))
        .collect();
    let mut children = Vec::with_capacity(names.len());
    let mut unreadable = Vec::new();
    for (name, read) in names.into_iter().zip(reads) {
        match read.await {
            Ok((data, stat)) => {
                if stat.num_children > 0 {
                    mirror.ignore(format!("{path}/{name}/…"), Why::Nested);
                }
                children.push((name, data))
            }
            Err(zk::Error::NoNode) => {}
            Err(e @ zk::Error::NoAuth) => unreadable.push((name, refused(&e, auth))),
            Err(e) => {
                tracing::warn!(%path, error = %e, "cannot read: keeping the previous values");
                mirror.log_ignored(path);
                return false;
            }
        }
    }
    let changed = mirror.replace_read(path, children, unreadable);
    mirror.log_ignored(path);
    changed
}

/// Why a node refused to this session (`auth`) is left out.
fn refused(e: &zk::Error, auth: &[ZkAuth]) -> Why {
    Why::Unreadable(auth::explain(e, auth))
}

/// Applies a batch of watch events to the mirror; whether it changed. Each path
/// is read once, whatever number of events it had, and the reads go out together
/// (one round trip): what a node holds when read is what counts.
///
/// A deleted child is read before it is dropped: a node replaced in one
/// transaction (a handover's registration) is deleted and created at once, and the
/// two events may come in separate batches, which would publish a snapshot without
/// it in between.
async fn apply(client: &zk::Client, k: &mut Keeper, events: Vec<WatchedEvent>) -> bool {
    let mut changed = false;
    let mut reads = Vec::new();
    for (path, deleted) in last_per_path(events) {
        if k.mirror.split(&path).is_none() {
            if !deleted && k.mirror.nested_in(&path).is_some() {
                k.mirror.ignore(path, Why::Nested);
                continue;
            }
            // Not a child: a followed folder itself may have been deleted.
            changed |= deleted && remove(k, &path);
            continue;
        }
        reads.push((client.get_data(&path), path, deleted));
    }
    // Reads that fail (the connection lost under a storm) are logged as one line.
    let mut unread = None;
    for (read, path, deleted) in reads {
        changed |= match read.await {
            Ok((data, _)) => k.mirror.set(&path, data),
            Err(zk::Error::NoNode) => remove(k, &path),
            Err(_) if deleted => remove(k, &path),
            Err(e @ zk::Error::NoAuth) => {
                let why = refused(&e, &k.options().zk_auth);
                k.mirror.unreadable(&path, why)
            }
            Err(e) => {
                Tally::note(&mut unread, (path, e));
                false
            }
        };
    }
    if let Some(Tally {
        first: (path, error),
        count: n,
    }) = unread
    {
        tracing::warn!(%path, %error, more = n - 1, "cannot read a changed node (and {} more): re-read on reconnect", n - 1);
    }
    k.mirror.log_ignored("the changes just read");
    changed
}

/// The paths of node events, each once, in the order they first changed, with
/// whether the last event of each was a deletion.
fn last_per_path(events: Vec<WatchedEvent>) -> Vec<(String, bool)> {
    let mut last: Vec<(String, bool)> = Vec::with_capacity(events.len());
    let mut at: HashMap<String, usize> = HashMap::with_capacity(events.len());
    for ev in events {
        tracing::debug!(?ev, "watch event");
        let deleted = match ev.event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => false,
            EventType::NodeDeleted => true,
            EventType::NodeChildrenChanged | EventType::Session => continue,
        };
        match at.get(&ev.path) {
            Some(&i) => last[i].1 = deleted,
            None => {
                at.insert(ev.path.clone(), last.len());
                last.push((ev.path, deleted));
            }
        }
    }
    last
}

/// Drops `path` from the mirror; whether it changed.
fn remove(k: &mut Keeper, path: &str) -> bool {
    let removed = k.mirror.remove(path);
    if removed {
        tracing::debug!(%path, "gone from ZooKeeper: dropped from the mirror");
    }
    removed
}

/// Makes sure the wanted registration exists and belongs to this session (or that
/// none is wanted); else why not yet. A new node is created only after the health
/// check.
async fn ensure_registered(client: &zk::Client, k: &mut Keeper) -> Result<(), String> {
    let (Some(r), Some(path)) = (k.registration.clone(), k.registration_path()) else {
        return Ok(());
    };
    let ours = client.session_id().0;
    match client.check_stat(&path).await {
        Ok(Some(stat)) if stat.ephemeral_owner == ours => {
            k.status(|s| s.registered = Some(path));
            return Ok(());
        }
        Ok(Some(_)) if k.yielded => {
            // The process this one handed over to registered the address.
            k.status(|s| s.registered = None);
            return Ok(());
        }
        Ok(stale) => {
            if let Err(e) = ping(r.check, &r.method, Duration::from_secs(1)).await {
                return Err(format!("the health check of {} failed: {e}", r.check));
            }
            if let Some(stat) = stale {
                // A node of another session (a process this one took over from, or
                // an expired session of ours): replaced so that it goes when this
                // session goes.
                tracing::info!(%path, owner = format!("{:#x}", stat.ephemeral_owner), "replacing a provider node owned by another session");
                let node = provider_node(k);
                let replaced = replace(client, &path, stat.version, &r.json(), &node)
                    .await
                    .map_err(|e| auth::explain(&e, &k.options().zk_auth));
                return registered(k, path, replaced);
            }
        }
        Err(e) => return Err(format!("cannot check the registration {path}: {e}")),
    }
    let auth = k.options().zk_auth.clone();
    if make_chroot(client, &auth).await? {
        tracing::info!(
            chroot = client.path(),
            "created the connect string's chroot"
        );
    }
    let parent = k.mirror.layout().providers(&r.service);
    if let Err(e) = make_app_folder(client, k.mirror.layout(), &parent, &auth).await {
        let e = auth::explain(&e, &auth);
        return Err(format!("cannot create the providers folder {parent}: {e}"));
    }
    let created = client.create(&path, &r.json(), &provider_node(k)).await;
    let created = created.map(drop).map_err(|e| auth::explain(&e, &auth));
    registered(k, path, created)
}

/// After the registration's node was deleted, not by this process (by an operator
/// or a cleanup script): registers again, after the health check. Nothing is done
/// when the address was handed over, or when another session registered it since
/// (a handover's new process, which replaces the node in one transaction): that
/// node stays, and should it go, this process registers again.
async fn restore_registration(client: &zk::Client, k: &mut Keeper) -> Result<(), String> {
    let Some(path) = k.registration_path().filter(|_| !k.yielded) else {
        return Ok(());
    };
    match client.check_stat(&path).await {
        Ok(None) => {
            tracing::warn!(%path, "the provider node was deleted, not by this process: registering again (to take a node out of rotation, set its weight to 0)");
            k.status(|s| s.registered = None);
            ensure_registered(client, k).await
        }
        Ok(Some(stat)) if stat.ephemeral_owner != client.session_id().0 => {
            tracing::info!(%path, owner = format!("{:#x}", stat.ephemeral_owner), "another session registered this address: its node stays");
            k.status(|s| s.registered = None);
            Ok(())
        }
        Ok(Some(_)) => Ok(()),
        Err(e) => Err(format!("cannot check the registration {path}: {e}")),
    }
}

/// A provider node's mode: ephemeral, with the ACL of the process's credentials
/// ([`auth::node_acls`]).
fn provider_node(k: &Keeper) -> zk::CreateOptions<'static> {
    CreateMode::Ephemeral.with_acls(auth::node_acls(&k.options().zk_auth))
}

/// Replaces the node at `path`, if it is still at `version`, by this session's
/// node holding `data`, in one transaction: a reader sees the old node or the new
/// one, never none (a delete then a create would leave the address unregistered
/// between them).
async fn replace(
    client: &zk::Client,
    path: &str,
    version: i32,
    data: &[u8],
    node: &zk::CreateOptions<'_>,
) -> Result<(), zk::Error> {
    let mut multi = client.new_multi_writer();
    multi
        .add_delete(path, Some(version))
        .and_then(|()| multi.add_create(path, data, node))?;
    multi.commit().await.map(drop).map_err(zk::Error::from)
}

/// Records the outcome of a registration attempt at `path`.
fn registered(k: &mut Keeper, path: String, outcome: Result<(), String>) -> Result<(), String> {
    match outcome {
        Ok(()) => {
            tracing::info!(%path, "registered");
            k.status(|s| s.registered = Some(path));
            Ok(())
        }
        Err(e) => Err(format!("cannot register {path}: {e}")),
    }
}

/// After a handover (or a rollback's hand-back): waits at most `wait` for the
/// other process, which serves the same address, to replace this session's node
/// with its own, then forgets the registration without deleting anything; whether
/// it did.
async fn left_to_successor(client: &zk::Client, k: &mut Keeper, wait: Duration) -> bool {
    let Some(path) = k.registration_path() else {
        return false;
    };
    let ours = client.session_id().0;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Ok(Some(stat)) = client.check_stat(&path).await {
            if stat.ephemeral_owner != ours {
                tracing::info!(%path, "the process this one left the address to registered it: its node stays");
                k.registration = None;
                k.status(|s| s.registered = None);
                return true;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(%path, ?wait, "the process this one left the address to did not register in time: deregistering");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes the registration; whether there was one.
async fn deregister(client: &zk::Client, k: &mut Keeper) -> bool {
    let Some(path) = k.registration_path() else {
        return false;
    };
    k.registration = None;
    k.status(|s| s.registered = None);
    // Only this session's node: another process may have registered the address
    // since (a handover's successor), and its node is not this one's to delete.
    let version = match client.check_stat(&path).await {
        Ok(Some(stat)) if stat.ephemeral_owner == client.session_id().0 => stat.version,
        Ok(Some(stat)) => {
            tracing::info!(%path, owner = format!("{:#x}", stat.ephemeral_owner), "the provider node belongs to another session now: left in place");
            return false;
        }
        Ok(None) => {
            tracing::info!(%path, "not registered: nothing to deregister");
            return false;
        }
        Err(e) => {
            tracing::warn!(%path, error = %e, "cannot check the provider node: it goes with the session");
            return false;
        }
    };
    match client.delete(&path, Some(version)).await {
        Ok(()) | Err(zk::Error::NoNode) => {
            tracing::info!(%path, "deregistered");
            true
        }
        Err(e) => {
            tracing::warn!(%path, error = %e, "cannot delete the provider node: it goes with the session");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_each_path_once_and_keeps_its_last_event() {
        let ev = |t, p: &str| WatchedEvent::new(t, p);
        let batch = vec![
            ev(EventType::NodeDataChanged, "/a/config/k"),
            ev(EventType::NodeCreated, "/a/providers/h:1"),
            ev(EventType::NodeDataChanged, "/a/config/k"),
            ev(EventType::NodeChildrenChanged, "/a/config"),
            ev(EventType::NodeDeleted, "/a/config/k"),
            ev(EventType::NodeDeleted, "/a/providers/h:2"),
            ev(EventType::NodeCreated, "/a/providers/h:2"),
        ];
        let last = last_per_path(batch);
        let want = [
            ("/a/config/k", true),
            ("/a/providers/h:1", false),
            ("/a/providers/h:2", false),
        ];
        let want: Vec<_> = want.iter().map(|&(p, d)| (p.to_string(), d)).collect();
        assert_eq!(last, want);
    }
}
