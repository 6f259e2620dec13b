//! How a relay's sockets are bounded and closed: the message limit and the
//! small buffers both sockets are opened with (and opened with again after a
//! large message, [`renew`]), the memory budget that large messages in flight
//! share across every socket (`proxy.ws_memory_budget_bytes`, closed with
//! 1013 when spent), closes that cannot hang on a peer that stopped reading,
//! and the 1009 close of a program that sent too much — after which the rest
//! of its message is read and dropped, so the program reads the close instead
//! of a connection reset.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tracing::warn;

use super::bounded::FrameBounded;

/// How long closing a socket may take (the close frame written and flushed):
/// a peer that stopped reading must not keep the relay's task alive.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// After refusing an oversized message, the rest of it is read and dropped
/// for at most this long, so that a program still writing it then reads the
/// 1009 close instead of a connection reset...
const LINGER_MAX: Duration = Duration::from_secs(5);
/// ... and no longer than until the program has been silent for this long.
const LINGER_IDLE: Duration = Duration::from_millis(500);

/// Messages above this size are large: each counts twice its size (read,
/// then written) against the memory budget while it is relayed, and after
/// one the sockets' buffers, grown to hold it, are renewed.
pub(crate) const LARGE: usize = 64 * 1024;

/// The read buffer a socket starts with (tungstenite's default is 128 KiB,
/// which made 0.25 MiB per idle relay).
const READ_BUFFER: usize = 8 * 1024;

/// Both sockets of a relay refuse frames and messages over `max_message`
/// bytes before buffering them (tungstenite checks a frame's length in its
/// header). They start with small buffers, and write each frame at once.
pub(super) fn socket_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
}

/// The bytes large messages in flight may take across every relay
/// (`proxy.ws_memory_budget_bytes`).
#[derive(Clone)]
pub(super) struct MemoryBudget(Arc<Semaphore>);

impl MemoryBudget {
    pub(super) fn new(bytes: usize) -> MemoryBudget {
        MemoryBudget(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    /// A message's share while it is relayed: nothing for a small one; `Err`
    /// when the budget has no room for a large one.
    pub(super) fn charge(&self, len: usize) -> Result<Option<OwnedSemaphorePermit>, ()> {
        if len <= LARGE {
            return Ok(None);
        }
        let n = u32::try_from(len.saturating_mul(2)).map_err(|_| ())?;
        self.0.clone().try_acquire_many_owned(n).map(Some).map_err(|_| ())
    }
}

/// The same socket under a new `WebSocketStream`, with small buffers again.
/// Only for a stream that holds nothing: its writes flushed and its reads
/// ended at a message's end ([`FrameBounded::quiescent`]).
pub(super) async fn renew<S>(
    ws: WebSocketStream<FrameBounded<S>>,
    role: Role,
    max_message: usize,
) -> WebSocketStream<FrameBounded<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    WebSocketStream::from_raw_socket(ws.into_inner(), role, Some(socket_config(max_message))).await
}

/// Closes both sockets of a relay whose large message found the memory
/// budget spent: 1013 ("try again later") to the program.
pub(super) async fn spent<C, U>(client: &mut WebSocketStream<C>, upstream: &mut WebSocketStream<U>, len: usize)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    warn!(
        bytes = len,
        "a WebSocket message found proxy.ws_memory_budget_bytes spent by other sockets; closing its relay (1013)"
    );
    let frame = CloseFrame {
        code: CloseCode::Again,
        reason: "ethgas-sidecar: the relay's memory (proxy.ws_memory_budget_bytes) is in use; reconnect later".into(),
    };
    close(client, Some(frame)).await;
    close(upstream, None).await;
}

/// A close frame with code 1009 ("message too big").
pub(super) fn too_big(reason: String) -> CloseFrame {
    CloseFrame {
        code: CloseCode::Size,
        reason: reason.into(),
    }
}

/// Sends a close frame, bounded by [`CLOSE_WITHIN`].
pub(super) async fn close<S>(ws: &mut WebSocketStream<S>, frame: Option<CloseFrame>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_WITHIN, ws.close(frame)).await;
}

/// Closes a program's socket after an oversized message: the close frame,
/// then whatever the program still sends is read and dropped (tungstenite
/// cannot skip the rest of a refused frame), until it goes quiet or closes,
/// for at most [`LINGER_MAX`].
pub(super) async fn refuse_oversized<S>(ws: &mut WebSocketStream<S>, frame: CloseFrame)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = Instant::now() + LINGER_MAX;
    let _ = tokio::time::timeout_at(deadline, ws.close(Some(frame))).await;
    let io = ws.get_mut();
    let mut sink = vec![0u8; 16 * 1024];
    loop {
        let quiet = (Instant::now() + LINGER_IDLE).min(deadline);
        match tokio::time::timeout_at(quiet, io.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => continue,
            _ => break,
        }
    }
}
