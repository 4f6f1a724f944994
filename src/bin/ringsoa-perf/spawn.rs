//! `--spawn-demo`: the load generator starts `ringsoa-demo` itself, pinned.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `ringsoa-demo --cores 1` process pinned to one CPU, killed on drop.
pub struct DemoProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl DemoProcess {
    /// Starts the `ringsoa-demo` that sits beside this binary on a free loopback
    /// port, pinned to `cpu` (with `taskset`); returns once it accepts.
    pub fn start(cpu: usize) -> std::io::Result<DemoProcess> {
        let demo = std::env::current_exe()?.with_file_name("ringsoa-demo");
        if !demo.exists() {
            return Err(std::io::Error::other(format!(
                "{} not found: build it (cargo build --release --bin ringsoa-demo)",
                demo.display()
            )));
        }
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = Command::new("taskset")
            .arg("-c")
            .arg(cpu.to_string())
            .arg(&demo)
            .args(["--listen", &addr.to_string(), "--cores", "1"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::other(format!("starting taskset {}: {e}", demo.display()))
            })?;
        let mut demo = DemoProcess { child, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = demo.child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "ringsoa-demo exited: {status}"
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(
                    "ringsoa-demo did not start within 10 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(demo)
    }

    /// The server's PID (taskset execs it, so it is the child's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
