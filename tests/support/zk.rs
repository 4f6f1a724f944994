//! A real ZooKeeper for a test (`tools/zk.sh`, Debian's package): one server or an
//! ensemble on free loopback ports, stopped on drop; and a blocking client to look
//! at it and change it the way an operator's tool would.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use zookeeper_client as zk;

/// The login `tools/zk.sh --sasl` sets up, as `--zk-auth` takes it.
pub const SASL_LOGIN: &str = "sasl:ringsoa:ringsoa-secret";

/// A ZooKeeper server or ensemble, stopped on drop.
pub struct ZooKeeper {
    dir: PathBuf,
    /// The connect string.
    pub connect: String,
}

fn zk_sh(args: &[&str]) -> std::process::Output {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/zk.sh"))
        .args(args)
        .output()
        .expect("tools/zk.sh runs")
}

impl ZooKeeper {
    /// Starts `nodes` servers (1: standalone) on free ports.
    pub fn start(nodes: usize) -> ZooKeeper {
        Self::start_with(nodes, &[])
    }

    /// Starts `nodes` servers that also serve TLS (`tools/zk.sh --tls`): on
    /// [`ZooKeeper::secure_connect`], with a client certificate required.
    pub fn start_tls(nodes: usize) -> ZooKeeper {
        Self::start_with(nodes, &["--tls"])
    }

    /// Starts one server that requires a SASL DIGEST-MD5 login of every session
    /// (`tools/zk.sh --sasl`): [`SASL_LOGIN`]. [`ZooKeeper::cli`] logs in with it;
    /// [`Zk`] cannot.
    pub fn start_sasl() -> ZooKeeper {
        Self::start_with(1, &["--sasl"])
    }

    /// Starts one ZooKeeper 3.4.13 server (`tools/zk.sh --release 3.4`, Debian
    /// bullseye's jar, downloaded once), which knows no persistent watches.
    pub fn start_3_4() -> ZooKeeper {
        Self::start_with(1, &["--release", "3.4"])
    }

    /// Starts one server that serves at most `n` connections from a client host
    /// and closes more at once (`tools/zk.sh --max-conns`, its maxClientCnxns),
    /// on its plain port and, counted apart, over TLS as [`ZooKeeper::start_tls`].
    pub fn start_max_conns(n: usize) -> ZooKeeper {
        Self::start_with(1, &["--max-conns", &n.to_string(), "--tls"])
    }

    /// The TLS connect string of a server started by [`ZooKeeper::start_tls`].
    pub fn secure_connect(&self) -> String {
        std::fs::read_to_string(self.dir.join("secure_connect"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The flags that reach a server started with TLS: its CA, and the client
    /// certificate and key it takes.
    pub fn tls_flags(&self) -> Vec<String> {
        let files = ["ca.pem", "client.pem", "client.key"].map(|f| self.tls_file(f));
        let flags = ["--zk-tls-ca", "--zk-tls-cert", "--zk-tls-key"].map(String::from);
        flags
            .into_iter()
            .zip(files)
            .flat_map(|(f, v)| [f, v])
            .collect()
    }

    /// A file `tools/zk.sh --tls` made: `ca.pem`, `other-ca.pem`, `client.pem`,
    /// `client.key`, `other-client.pem`, `other-client.key`.
    pub fn tls_file(&self, name: &str) -> String {
        self.dir.join("tls").join(name).to_str().unwrap().into()
    }

    /// `nodes` servers started with `tools/zk.sh start`'s `flags` too.
    fn start_with(nodes: usize, flags: &[&str]) -> ZooKeeper {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ringsoa-zk-{}-{n}", std::process::id()));
        for _ in 0..5 {
            let _ = std::fs::remove_dir_all(&dir);
            // Client ports base+k-1, quorum ports base+1000+k and base+2000+k (tools/zk.sh):
            // all given out, and in range.
            let mut also: Vec<u16> = (1..nodes as u16).collect();
            if nodes > 1 {
                also.extend((1..=nodes as u16).flat_map(|k| [1000 + k, 2000 + k]));
            }
            if flags.contains(&"--tls") {
                also.extend((0..nodes as u16).map(|k| 500 + k));
            }
            let base = loop {
                let p = super::process::free_ports(&also);
                if p < 60000 {
                    break p;
                }
            };
            let (port, ensemble) = (base.to_string(), nodes.to_string());
            let mut args = vec!["start", "--dir", dir.to_str().unwrap()];
            args.extend(["--port", &port, "--ensemble", &ensemble]);
            args.extend(flags);
            let out = zk_sh(&args);
            if out.status.success() {
                let connect = String::from_utf8(out.stdout).unwrap().trim().to_string();
                return ZooKeeper { dir, connect };
            }
            zk_sh(&["stop", "--dir", dir.to_str().unwrap()]);
            eprintln!(
                "zk.sh start failed, trying other ports: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        panic!("ZooKeeper did not start (see the messages above)");
    }

    fn file(&self, node: usize, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("node-{node}/{name}")))
            .unwrap()
            .trim()
            .to_string()
    }

    fn signal(&self, node: usize, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.file(node, "pid")])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig} node {node}");
    }

    /// Kills node `node` (1-based) with SIGKILL and waits until it is gone.
    pub fn kill(&self, node: usize) {
        self.signal(node, "-KILL");
        let pid = self.file(node, "pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                Instant::now() < deadline,
                "ZooKeeper node {node} did not die"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts node `node` again (same data) and waits until it answers.
    pub fn start_node(&self, node: usize) {
        let out = zk_sh(&[
            "start-node",
            &node.to_string(),
            "--dir",
            self.dir.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "start-node: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Freezes node `node` (SIGSTOP).
    pub fn pause(&self, node: usize) {
        self.signal(node, "-STOP");
    }

    /// Thaws node `node` (SIGCONT).
    pub fn resume(&self, node: usize) {
        self.signal(node, "-CONT");
    }

    /// The number of the node that leads the ensemble.
    pub fn leader(&self) -> usize {
        let out = zk_sh(&["status", "--dir", self.dir.to_str().unwrap()]);
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text
            .lines()
            .find(|l| l.ends_with("mode=leader"))
            .expect("a leader");
        line["node-".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// A client (an operator's tool).
    pub fn client(&self) -> Zk {
        Zk::connect(&self.connect)
    }

    /// Runs one command of ZooKeeper's own CLI (`zkCli.sh`, Debian's package, a
    /// Java client) against this ZooKeeper, as an operator would, and returns what it
    /// printed on stdout but its connection chatter. Panics when the command fails.
    pub fn cli(&self, command: &[&str]) -> String {
        self.try_cli(command)
            .unwrap_or_else(|e| panic!("zkCli {command:?}: {e}"))
    }

    /// [`ZooKeeper::cli`], its failure (what it printed on stderr) returned.
    pub fn try_cli(&self, command: &[&str]) -> Result<String, String> {
        let out = self.zk_cli().args(command).output().expect("zkCli runs");
        match out.status.success() {
            true => Ok(cli_text(&out.stdout)),
            false => Err(cli_text(&out.stderr)),
        }
    }

    /// Runs `lines` as one zkCli session (commands such as `addauth` hold for the
    /// lines after them), returning its stdout and stderr, chatter and logs left out.
    pub fn cli_session(&self, lines: &[&str]) -> (String, String) {
        use std::io::Write;
        let mut child = self
            .zk_cli()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("zkCli runs");
        let mut input = child.stdin.take().unwrap();
        input.write_all(lines.join("\n").as_bytes()).unwrap();
        input.write_all(b"\n").unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        (cli_text(&out.stdout), cli_text(&out.stderr))
    }

    fn zk_cli(&self) -> Command {
        let cli = "/usr/share/zookeeper/bin/zkCli.sh";
        assert!(
            std::path::Path::new(cli).exists(),
            "{cli} is missing: Debian's zookeeper package provides it (tools/zk.sh install)"
        );
        let mut cmd = Command::new(cli);
        cmd.args(["-server", &self.connect]);
        // A server of `start_sasl`: zkCli logs in too.
        let login = self.dir.join("client.jaas");
        if login.exists() {
            let flag = format!("-Djava.security.auth.login.config={}", login.display());
            cmd.env("CLIENT_JVMFLAGS", flag);
        }
        cmd
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        zk_sh(&["stop", "--dir", self.dir.to_str().unwrap()]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// zkCli's output without its connection chatter and log lines.
fn cli_text(bytes: &[u8]) -> String {
    let chatter = [
        "Connecting to",
        "WATCHER::",
        "WatchedEvent",
        "Welcome to",
        "JLine",
        "log4j:",
        "SLF4J:",
    ];
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.is_empty() && !chatter.iter().any(|c| l.starts_with(c)))
        .filter(|l| !l.contains(" INFO ") && !l.contains(" WARN "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One write of [`Zk::pipelined`].
#[derive(Debug)]
pub enum Write<'a> {
    /// Sets an existing node's data.
    Set(&'a str, Vec<u8>),
    /// Creates an ephemeral node of the client's session.
    Ephemeral(&'a str, Vec<u8>),
    /// Deletes a node.
    Delete(&'a str),
}

/// A blocking ZooKeeper client.
pub struct Zk {
    rt: tokio::runtime::Runtime,
    client: zk::Client,
}

impl Zk {
    /// Connects to `connect`.
    pub fn connect(connect: &str) -> Zk {
        // A worker thread keeps the session alive between calls.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // An ensemble that just lost its leader answers again once it has elected
        // another, which a loaded machine may take longer than one attempt waits.
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let attempt = zk::Client::connector()
                .with_connection_timeout(Duration::from_secs(5))
                .connect(connect);
            match rt.block_on(attempt) {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("ZooKeeper at {connect} not reachable yet ({e}); trying again");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("ZooKeeper at {connect} not reachable within 30 s: {e}"),
            }
        };
        Zk { rt, client }
    }

    /// A node's data and stat, if it exists.
    pub fn get(&self, path: &str) -> Option<(Vec<u8>, zk::Stat)> {
        match self.rt.block_on(self.client.get_data(path)) {
            Ok(v) => Some(v),
            Err(zk::Error::NoNode) => None,
            Err(e) => panic!("get {path}: {e}"),
        }
    }

    /// Creates or overwrites a persistent node (and its parents).
    pub fn set(&self, path: &str, data: &[u8]) {
        let dir = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        let parent = path.rsplit_once('/').unwrap().0;
        self.rt.block_on(async {
            self.client.mkdir(parent, &dir).await.unwrap();
            match self.client.set_data(path, data, None).await {
                Ok(_) => {}
                Err(zk::Error::NoNode) => {
                    self.client.create(path, data, &dir).await.unwrap();
                }
                Err(e) => panic!("set {path}: {e}"),
            }
        });
    }

    /// Creates a persistent node (its parents open to all) that anyone may read and
    /// nobody may change or create under.
    pub fn create_read_only(&self, path: &str) {
        let parent = path.rsplit_once('/').unwrap().0;
        let dir = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        let locked = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_read());
        self.rt.block_on(async {
            if !parent.is_empty() {
                self.client.mkdir(parent, &dir).await.unwrap();
            }
            self.client.create(path, b"", &locked).await.unwrap();
        });
    }

    /// Sets `path`'s ACL to let anyone do anything but read it.
    pub fn refuse_reading(&self, path: &str) {
        use zk::Permission as P;
        let acl = zk::Acl::new(
            P::WRITE | P::CREATE | P::DELETE | P::ADMIN,
            zk::AuthId::anyone(),
        );
        let set = self.client.set_acl(path, &[acl], None);
        self.rt
            .block_on(set)
            .unwrap_or_else(|e| panic!("setAcl {path}: {e}"));
    }

    /// Sends `writes` at once, each without waiting for the one before
    /// (ZooKeeper applies a session's requests in order), then waits for every
    /// answer.
    pub fn pipelined(&self, writes: &[Write]) {
        type Answer<'a> = Pin<Box<dyn Future<Output = Result<(), zk::Error>> + Send + 'a>>;
        let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        let c = &self.client;
        // Each request goes out as its future is made.
        let answers: Vec<Answer> = writes
            .iter()
            .map(|w| -> Answer {
                match w {
                    Write::Set(p, d) => {
                        let f = c.set_data(p, d, None);
                        Box::pin(async move { f.await.map(drop) })
                    }
                    Write::Ephemeral(p, d) => {
                        let f = c.create(p, d, &ephemeral);
                        Box::pin(async move { f.await.map(drop) })
                    }
                    Write::Delete(p) => Box::pin(c.delete(p, None)),
                }
            })
            .collect();
        self.rt.block_on(async {
            for (w, answer) in writes.iter().zip(answers) {
                if let Err(e) = answer.await {
                    panic!("{w:?}: {e}");
                }
            }
        });
    }

    /// Deletes a node if it exists.
    pub fn delete(&self, path: &str) {
        match self.rt.block_on(self.client.delete(path, None)) {
            Ok(()) | Err(zk::Error::NoNode) => {}
            Err(e) => panic!("delete {path}: {e}"),
        }
    }

    /// Watches the node at `path` (which must exist) for its next change; the
    /// answer is that event's type and whether a read sent the moment it arrived
    /// found the node: what a consumer woken by the change sees.
    pub fn on_change(&self, path: &str) -> tokio::task::JoinHandle<(zk::EventType, bool)> {
        let client = self.client.clone();
        let path = path.to_string();
        let (stat, watcher) = self
            .rt
            .block_on(client.check_and_watch_stat(&path))
            .unwrap_or_else(|e| panic!("watch {path}: {e}"));
        assert!(stat.is_some(), "watch {path}: no such node");
        self.rt.spawn(async move {
            let event = watcher.changed().await;
            let found = client.check_stat(&path).await;
            (
                event.event_type,
                found.expect("read after the event").is_some(),
            )
        })
    }

    /// The answer of a task of this client's, waited for at most `limit`.
    pub fn wait_task<T>(&self, task: tokio::task::JoinHandle<T>, limit: Duration) -> T {
        self.rt
            .block_on(async { tokio::time::timeout(limit, task).await })
            .expect("the task did not end in time")
            .expect("the task panicked")
    }

    /// Waits until `check` holds for the node at `path` (its data, if it exists),
    /// at most `limit`; whether it did.
    pub fn wait_for(
        &self,
        path: &str,
        limit: Duration,
        check: impl Fn(Option<&(Vec<u8>, zk::Stat)>) -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if check(self.get(path).as_ref()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
