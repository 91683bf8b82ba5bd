//! Binding a TCP listener with a deep accept queue.
//!
//! The standard library's `TcpListener::bind` asks the kernel for an accept
//! queue of 128 connections. When thousands of sites dial one `serve` at
//! once (a restart, a network that comes back), connections beyond the
//! queue are dropped by the kernel before `serve` ever sees them, and each
//! dialer waits for its SYN retry (1 s, then 3 s, ...): a storm that takes
//! minutes to drain. [`listen`] asks for [`LISTEN_BACKLOG`] instead (the
//! kernel caps it at `net.core.somaxconn`, 4096 on current Linux).
//!
//! The socket is made the way the standard library makes it otherwise:
//! close-on-exec, `SO_REUSEADDR` (so a restarted `serve` binds while old
//! connections are in TIME_WAIT), IPv6 sockets for IPv6 addresses.

use std::io;
use std::net::{SocketAddr, TcpListener};

use rustix::net::{self as sock, sockopt, AddressFamily, SocketFlags, SocketType};

/// The accept queue asked for: enough for every dialer of a large site
/// arriving at once.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Binds `addr` and listens with [`LISTEN_BACKLOG`].
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = sock::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sock::bind(&fd, &addr)?;
    sock::listen(&fd, LISTEN_BACKLOG)?;
    Ok(TcpListener::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    #[test]
    fn a_listener_accepts_and_a_taken_port_is_addr_in_use() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        drop(accepted);
        let err = listen(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    }

    #[test]
    fn the_accept_queue_is_the_backlog_asked_for() {
        // `ss` shows a listening socket's backlog as its Send-Q.
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = listener.local_addr().unwrap().port();
        let Ok(out) = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{port}")])
            .output()
        else {
            assert!(
                std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
                "ss (iproute2) is required"
            );
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let send_q: i32 = text
            .split_whitespace()
            .nth(2)
            .and_then(|q| q.parse().ok())
            .unwrap_or_else(|| panic!("ss output: {text:?}"));
        let somaxconn: i32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(LISTEN_BACKLOG);
        assert_eq!(send_q, LISTEN_BACKLOG.min(somaxconn), "{text}");
        assert!(send_q > 128, "deeper than the standard library's 128");
    }
}
