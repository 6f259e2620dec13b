//! How a relay's sockets are bounded and closed: the message limit both
//! sockets are opened with, closes that cannot hang on a peer that stopped
//! reading, and the 1009 close of a program that sent too much — after which
//! the rest of its message is read and dropped, so the program reads the
//! close instead of a connection reset.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

/// How long closing a socket may take (the close frame written and flushed):
/// a peer that stopped reading must not keep the relay's task alive.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// After refusing an oversized message, the rest of it is read and dropped
/// for at most this long, so that a program still writing it then reads the
/// 1009 close instead of a connection reset...
const LINGER_MAX: Duration = Duration::from_secs(5);
/// ... and no longer than until the program has been silent for this long.
const LINGER_IDLE: Duration = Duration::from_millis(500);

/// Both sockets of a relay refuse frames and messages over `max_message`
/// bytes before buffering them (tungstenite checks a frame's length in its
/// header).
pub(super) fn socket_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
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
