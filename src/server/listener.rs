//! The sockets the sidecar serves on: bound from an address (TCP with
//! `SO_REUSEADDR` and a deep backlog, or a unix socket with its mode, a
//! stale socket file replaced) or taken over from systemd, and what their
//! accepts yield.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, UnixListener};

use crate::config::Listen;

/// A bound listening socket.
pub enum Listener {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        path: Option<PathBuf>,
    },
}

/// A listening socket handed over by systemd, before the runtime runs.
pub enum Inherited {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// An accepted connection.
pub(super) enum Stream {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

impl Listener {
    /// Binds `listen`. A unix socket gets `mode`; a stale socket file left by
    /// a previous run is replaced.
    pub async fn bind(listen: &Listen, mode: u32) -> std::io::Result<Listener> {
        match listen {
            Listen::Tcp(addr) => Ok(Listener::Tcp(bind_tcp(*addr)?)),
            Listen::Unix(path) => {
                remove_stale_socket(path)?;
                let listener = UnixListener::bind(path)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                }
                Ok(Listener::Unix {
                    listener,
                    path: Some(path.clone()),
                })
            }
        }
    }

    /// Takes over a listener inherited from systemd (socket activation).
    /// Must run inside the runtime.
    pub fn adopt(inherited: Inherited) -> std::io::Result<Listener> {
        match inherited {
            Inherited::Tcp(l) => {
                l.set_nonblocking(true)?;
                Ok(Listener::Tcp(TcpListener::from_std(l)?))
            }
            Inherited::Unix(l) => {
                l.set_nonblocking(true)?;
                // systemd owns the socket file; it is not removed at exit.
                Ok(Listener::Unix {
                    listener: UnixListener::from_std(l)?,
                    path: None,
                })
            }
        }
    }

    /// The bound TCP address, if this is a TCP listener.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix { .. } => None,
        }
    }

    /// What it listens on, for log lines.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "tcp".into()),
            Listener::Unix { listener, .. } => listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_else(|| "unix socket".into()),
        }
    }

    pub(super) async fn accept(&self) -> std::io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok(Stream::Tcp(s, peer))
            }
            Listener::Unix { listener, .. } => Ok(Stream::Unix(listener.accept().await?.0)),
        }
    }

    /// The socket file this listener created, removed at exit.
    pub(super) fn socket_path(&self) -> Option<PathBuf> {
        match self {
            Listener::Unix { path, .. } => path.clone(),
            Listener::Tcp(_) => None,
        }
    }
}

/// Binds a TCP listener (`SO_REUSEADDR`, so a restart does not wait for old
/// connections in TIME_WAIT) with a backlog fit for bursts of connections.
/// The proxy workers share it through duplicated descriptors.
fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            Err(_) => {}
        }
    }
    Ok(())
}
