//! Server processes for tests: `ringsoa-demo` and a thriftpy2 server, killed on drop.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A `ringsoa-demo` process, killed on drop.
pub struct Demo {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A port that was free a moment ago and that no other caller in this test process
/// was given. Found by a socket that is bound, never listened on: tests run in
/// parallel, and a process that another test spawns holds a copy of every open
/// socket from its fork to its exec. A listening copy accepted the probe of
/// [`wait_listening`] meant for the server about to start on that port, and the
/// test's first call then found no server (beside a thread spawning processes
/// without pause, 0.5% of the ports a dropped listener had found still accepted a
/// connection).
///
/// The port is taken from below the kernel's ephemeral range: a port the kernel
/// picks for port 0 can be picked again for another test's outgoing connection
/// before the server binds it, and the bind then fails with "address in use"
/// (seen once in CI). Each test process starts at its own place in that range.
pub fn free_port() -> u16 {
    free_ports(&[])
}

/// A port `p` as [`free_port`] gives, such that `p + o` for every offset `o` in
/// `also` was free too and is given to no other caller either: for a process that
/// listens on several ports (a ZooKeeper ensemble's client and quorum ports). With
/// only `p` given, the next caller was handed `p + 1` while an ensemble's second
/// node was still starting there; the demo meant for it lost the bind, and the
/// node answered in its place (seen once in CI).
pub fn free_ports(also: &[u16]) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOWEST: u32 = 20_000;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral.saturating_sub(LOWEST);
    let start = std::process::id() * 101;
    loop {
        // With no room below the ephemeral range, let the kernel pick.
        let port = if span < 1_000 {
            0
        } else {
            LOWEST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span
        };
        let Some(base) = bindable(port as u16) else {
            continue;
        };
        let others: Option<Vec<u16>> = also
            .iter()
            .map(|o| base.checked_add(*o).and_then(bindable))
            .collect();
        let Some(mut ports) = others else {
            continue;
        };
        ports.push(base);
        let mut given = GIVEN.lock().unwrap();
        if ports.iter().all(|p| !given.contains(p)) {
            given.extend(ports);
            return base;
        }
    }
}

/// The port a socket bound to 127.0.0.1:`port` gets (0: the kernel picks), if the
/// bind succeeds.
fn bindable(port: u16) -> Option<u16> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    let probe = SocketAddr::from(([127, 0, 0, 1], port));
    socket.bind(&probe.into()).ok()?;
    Some(socket.local_addr().ok()?.as_socket()?.port())
}

impl Demo {
    /// Starts `ringsoa-demo --cores 2` on a free port with `extra` flags; returns once it accepts.
    pub fn start(extra: &[&str]) -> Demo {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        Demo::start_on(addr, extra)
    }

    /// Starts `ringsoa-demo --cores 2` on `addr` (a restart on the same port).
    pub fn start_on(addr: SocketAddr, extra: &[&str]) -> Demo {
        Demo::start_with(addr, extra, |_| {})
    }

    /// Starts `ringsoa-demo --cores 2` (unless `extra` says otherwise) on `addr`, its
    /// command adjusted by
    /// `configure` (stderr to a file, limits) before it is spawned.
    pub fn start_with(
        addr: SocketAddr,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Demo {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringsoa-demo"));
        cmd.args(["--listen", &addr.to_string()]);
        if !extra.contains(&"--cores") {
            cmd.args(["--cores", "2"]);
        }
        cmd.args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        configure(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        wait_listening(addr, "ringsoa-demo");
        // Something else listening there (a lost bind) answers the probe too.
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ringsoa-demo on {addr} exited ({status}) as it started");
        }
        Demo { child, addr }
    }

    /// Kills the process and waits until its listener is gone: a killed io_uring
    /// process's sockets close a moment after it is reaped, when the kernel tears its
    /// ring down, and until then its listener still accepts.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(self.addr).is_ok() {
            assert!(
                Instant::now() < deadline,
                "{} still accepts after the kill",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends the signal named `name` (`TERM`, `HUP`, …).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for exit; returns the exit code and how long it took.
    pub fn wait(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s.code(), start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "ringsoa-demo did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A demo whose log goes to a file (read back by [`Logged::text`]), its command
/// adjusted by `configure` too.
pub struct Logged {
    /// The process.
    pub demo: Demo,
    log: std::path::PathBuf,
}

impl Logged {
    /// Starts `ringsoa-demo` on a free port, its stderr to a file named for `name`.
    pub fn start(name: &str, configure: impl FnOnce(&mut Command)) -> Logged {
        let log = std::env::temp_dir().join(format!("ringsoa-{name}-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let demo = Demo::start_with(addr, &[], |cmd| {
            cmd.stderr(Stdio::from(file));
            configure(cmd);
        });
        Logged { demo, log }
    }

    /// Waits up to `timeout` for a line holding `what` in the log written so far.
    pub fn logs_within(&self, what: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains(what) {
                return true;
            }
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the demo (if it still runs) and returns its whole log. Stopped with
    /// SIGINT (a drain of at most 1 s): at its exit the log's writer thread has
    /// written every line, so that a line's absence means it was never logged
    /// (killed if it has not exited 5 s later).
    pub fn text(mut self) -> String {
        if self.demo.child.try_wait().unwrap().is_none() {
            self.demo.signal("INT");
            let start = Instant::now();
            while self.demo.child.try_wait().unwrap().is_none()
                && start.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        drop(self.demo);
        let text = std::fs::read_to_string(&self.log).unwrap();
        let _ = std::fs::remove_file(&self.log);
        text
    }

    /// Stops the demo; asserts that a flood logged one or two lines holding `what`
    /// (one per core per 10 s, two cores), not one each. Returns the log.
    pub fn logged_once_per_core(self, what: &str) -> String {
        let text = self.text();
        let lines = text.lines().filter(|l| l.contains(what)).count();
        assert!((1..=2).contains(&lines), "{lines} lines:\n{text}");
        text
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A peer server process (thriftpy2, Volo), killed on drop.
pub struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tests/peers/demo_server.py` (thriftpy2) in `mode` ("native"/"tracked").
pub fn py_server(mode: &str, proto: &str, framing: &str) -> (Peer, SocketAddr) {
    let py = python();
    let port = free_port();
    let child = Command::new(py)
        .args([
            "tests/peers/demo_server.py",
            "src/bin/ringsoa-demo/demo.thrift",
        ])
        .args([&port.to_string(), mode, proto, framing])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr, "thriftpy2 server");
    (Peer(child), addr)
}

impl Peer {
    /// Spawns `cmd` (stdout and stderr to nowhere) and returns once something
    /// accepts on `addr`.
    pub fn spawn(cmd: &mut Command, addr: SocketAddr, what: &str) -> Peer {
        let peer = Peer::spawn_quiet(cmd);
        wait_listening(addr, what);
        peer
    }

    /// Spawns `cmd` (stdout and stderr to nowhere) and returns at once.
    pub fn spawn_quiet(cmd: &mut Command) -> Peer {
        Peer(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

/// Waits (up to 15 s) until something accepts on `addr`.
pub fn wait_listening(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The path of a Volo peer binary (`tests/peers/volo`: `volo-client`,
/// `volo-server`), built once per test process into `target/peers` (a target
/// directory of its own, so the build can run while cargo test holds `target`).
pub fn volo_peer(bin: &str) -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target/peers");
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--manifest-path"])
            .arg(root.join("tests/peers/volo/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "building the Volo peers (tests/peers/volo) failed"
        );
    });
    target.join("debug").join(bin)
}

/// Starts the Volo peer server (its default codec) on a free port.
pub fn volo_server() -> (Peer, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new(volo_peer("volo-server"));
    cmd.arg(addr.to_string());
    (Peer::spawn(&mut cmd, addr, "the Volo server"), addr)
}

/// The project venv's Python (created by tools/venv.sh).
pub fn python() -> String {
    let py = format!("{}/.venv/bin/python", env!("CARGO_MANIFEST_DIR"));
    assert!(
        std::path::Path::new(&py).exists(),
        "{py} is missing: run tools/venv.sh (tools/test.sh does) to install thriftpy2"
    );
    py
}

/// Runs `python -c script args…` in the project's venv; its stdout, after it
/// succeeded (its stderr otherwise).
pub fn python_script(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .args(["-c", script])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `GET path` from an HTTP endpoint: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let text = http(addr, "GET", path, &[]);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// `METHOD path` with extra header lines (`"Accept: …"`) to an HTTP endpoint: the
/// whole response, read until the server closes.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[&str]) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for h in headers {
        request += &format!("{h}\r\n");
    }
    s.write_all(format!("{request}\r\n").as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// `ringsoa call --idl IDL --addr ADDR ARGS…` (ARGS: flags, then `Service.method` and
/// its JSON arguments).
pub fn ringsoa_call(idl: &str, addr: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringsoa"))
        .args(["call", "--idl", idl, "--addr", addr])
        .args(args)
        .output()
        .unwrap()
}

/// Runs the client program `exe` against a port nothing listens on: it must fail
/// with exit 1 and one line, `NAME: connect to ADDR: Connection refused (…)`.
pub fn refused_in_one_line(exe: &std::path::Path, name: &str) {
    let closed = format!("127.0.0.1:{}", free_port());
    let out = Command::new(exe).arg(&closed).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        format!("{name}: connect to {closed}: Connection refused (os error 111)")
    );
}

/// The trimmed stdout of `out`, which must have succeeded (its stderr otherwise).
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A DNS server that never answers, and a resolv.conf naming it: a command given
/// [`SilentDns::apply`] runs with that file as its `/etc/resolv.conf`, in a mount
/// namespace of its own (needs root: port 53 and the namespace).
pub struct SilentDns {
    _socket: std::net::UdpSocket,
    resolv: std::ffi::CString,
}

impl SilentDns {
    /// Listens on `ip`:53 (a loopback address of the 127.53/16 range) and writes
    /// `dir/resolv.conf` (3 tries of 3 s each per name, as a user's might).
    pub fn start(ip: &str, dir: &std::path::Path) -> SilentDns {
        let socket = std::net::UdpSocket::bind((ip, 53))
            .expect("the DNS drill needs root, for port 53 and a mount namespace");
        let resolv = dir.join("resolv.conf");
        let conf = format!("nameserver {ip}\noptions timeout:3 attempts:3\n");
        std::fs::write(&resolv, conf).unwrap();
        let resolv = std::ffi::CString::new(resolv.to_str().unwrap()).unwrap();
        SilentDns {
            _socket: socket,
            resolv,
        }
    }

    /// Makes `cmd` run with this resolv.conf.
    pub fn apply(&self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        let resolv = self.resolv.clone();
        // SAFETY: between fork and exec only system calls run, no allocation.
        unsafe {
            cmd.pre_exec(move || {
                let target = c"/etc/resolv.conf";
                let private = libc::MS_REC | libc::MS_PRIVATE;
                if libc::unshare(libc::CLONE_NEWNS) != 0
                    || libc::mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        private,
                        std::ptr::null(),
                    ) != 0
                    || libc::mount(
                        resolv.as_ptr(),
                        target.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}
