//! The registrar's pieces: what a provider registers, and the health check it
//! passes first — a real `ping` call over TCP to the process's own port.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::control::{Provider, ServiceName};

/// A provider registration: its node's path and JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The service registered under.
    pub service: ServiceName,
    /// The node's JSON.
    pub provider: Provider,
    /// The address the health check calls.
    pub check: SocketAddr,
    /// The health method called (`ping`).
    pub method: String,
}

impl Registration {
    /// The registration of a provider of `service` listening on `listen` with
    /// `cores` cores; `advertise` is the host others reach it at (default: the
    /// listen IP, or this host's outward IP when listening on all addresses).
    pub fn new(
        service: ServiceName,
        listen: SocketAddr,
        cores: usize,
        weight: u32,
        version: &str,
        advertise: Option<&str>,
    ) -> Self {
        let host = advertise
            .map(str::to_string)
            .unwrap_or_else(|| advertised_ip(listen.ip()).to_string());
        let check = if listen.ip().is_unspecified() {
            SocketAddr::new(loopback_of(listen.ip()), listen.port())
        } else {
            listen
        };
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Registration {
            service,
            provider: Provider {
                host,
                port: listen.port(),
                cores: cores as u32,
                weight,
                version: version.into(),
                pid: std::process::id(),
                started_at_ms,
                addr: None,
            },
            check,
            method: "ping".into(),
        }
    }

    /// The node's name: `<host>:<port>` (see [`super::layout::provider_node`]).
    pub fn node_name(&self) -> String {
        super::layout::provider_node(&self.provider.host, self.provider.port)
    }

    /// The node's JSON.
    pub fn json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.provider).expect("a provider serialises")
    }
}

/// Checks an advertised host: a name or an IP others can reach, without a port
/// (brackets around an IPv6 address are dropped). Returns the host to register.
pub fn check_advertise(host: &str) -> Result<String, String> {
    let bare = host.trim_matches(['[', ']']);
    match bare.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => Err(format!(
            "{ip} is not an address others can reach; give this host's own IP or name"
        )),
        Ok(_) => Ok(bare.to_string()),
        Err(_) if host.is_empty() || host.contains([':', '/', ' ']) => {
            Err("expected a host name or an IP, without a port".into())
        }
        Err(_) => Ok(host.to_string()),
    }
}

fn loopback_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    }
}

/// The listen IP, or for an unspecified one the IP this host's traffic leaves
/// from (found without sending anything; an IPv4 one as such, not mapped into
/// IPv6 as a dual-stack socket on `::` sees it), else loopback.
fn advertised_ip(ip: IpAddr) -> IpAddr {
    if !ip.is_unspecified() {
        return ip;
    }
    std::net::UdpSocket::bind((ip, 0))
        .and_then(|s| {
            s.connect(("10.255.255.255", 1))?;
            s.local_addr()
        })
        .map(|a| a.ip().to_canonical())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or_else(|| loopback_of(ip))
}

/// Calls `method` (no arguments) on `addr` over framed binary Thrift; `Ok` only
/// when a REPLY comes back within `timeout`.
pub async fn ping(addr: SocketAddr, method: &str, timeout: Duration) -> Result<(), String> {
    let call = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut msg = Vec::with_capacity(32);
        msg.extend_from_slice(&0x8001_0001u32.to_be_bytes()); // strict binary, CALL
        msg.extend_from_slice(&(method.len() as u32).to_be_bytes());
        msg.extend_from_slice(method.as_bytes());
        msg.extend_from_slice(&1i32.to_be_bytes()); // seqid
        msg.push(0); // empty argument struct
        let mut frame = (msg.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&msg);
        s.write_all(&frame)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut head = [0u8; 8];
        s.read_exact(&mut head)
            .await
            .map_err(|e| format!("read: {e}"))?;
        match head[7] {
            2 => Ok(()),
            3 => Err(format!("{method} answered with an exception")),
            t => Err(format!("unexpected message type {t}")),
        }
    };
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::{Backend, Governance, GovernanceOptions};

    #[test]
    fn an_advertised_host_must_be_reachable_and_portless() {
        assert_eq!(check_advertise("10.0.0.5").unwrap(), "10.0.0.5");
        assert_eq!(check_advertise("[::1]").unwrap(), "::1");
        assert_eq!(check_advertise("db-1.example").unwrap(), "db-1.example");
        for bad in ["0.0.0.0", "::", "[::]"] {
            let e = check_advertise(bad).unwrap_err();
            assert!(e.contains("not an address others can reach"), "{bad}: {e}");
        }
        for bad in ["", "host:9090", "a b"] {
            let e = check_advertise(bad).unwrap_err();
            assert!(e.contains("without a port"), "{bad:?}: {e}");
        }
        // On all addresses: the outward IP, an IPv4 one unmapped on `::`.
        for any in ["0.0.0.0:1", "[::]:1"] {
            let r = Registration::new(
                "app/c".parse().unwrap(),
                any.parse().unwrap(),
                1,
                100,
                "v",
                None,
            );
            let ip: IpAddr = r.provider.host.parse().unwrap();
            assert!(
                !ip.is_unspecified() && ip.to_canonical() == ip,
                "{any}: {ip}"
            );
        }
        // A library user who sets it gets the same refusal at start.
        let mut o = GovernanceOptions::new("app", "c", Backend::Embedded(String::new()));
        o.advertise = Some("0.0.0.0".into());
        let e = Governance::start(o).err().expect("refused").to_string();
        assert!(e.starts_with("advertise \"0.0.0.0\": "), "{e}");
    }
}
