//! A socket reader that never hands tungstenite more than the rest of the
//! current WebSocket frame (or, before it, the rest of the HTTP upgrade's
//! head), so that the relay can tell when tungstenite holds no input of its
//! own.
//!
//! Why: tungstenite grows a socket's read buffer to the largest frame it has
//! read and its write buffer to the largest it has written, and keeps both
//! for as long as the socket is open (one 1 MiB message cost a relay 2 MiB,
//! an echoed one 4 MiB, until the socket closed). It cannot shrink them, but
//! a fresh `WebSocketStream` on the same socket starts small. Building one is
//! safe only when the old one holds nothing: its writes are flushed, and it
//! has read exactly up to a message's end — which this reader makes
//! knowable ([`FrameBounded::quiescent`]): it reads ahead into a small buffer
//! of its own and follows the frame headers in what it hands on.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket ahead of tungstenite.
const LOOKAHEAD: usize = 4096;

/// What the bytes handed on next belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// An HTTP head; the value is how much of `\r\n\r\n` was just seen.
    HttpHead(usize),
    /// A frame header, of which these bytes were handed on so far.
    FrameHeader,
    /// A frame's payload; this much of it is left.
    Payload(u64),
}

/// An `AsyncRead + AsyncWrite` that hands on reads at most to the end of
/// the current frame; writes pass through.
pub(super) struct FrameBounded<S> {
    inner: S,
    ahead: Box<[u8; LOOKAHEAD]>,
    start: usize,
    end: usize,
    part: Part,
    /// The current frame's header bytes handed on so far.
    header: [u8; 14],
    header_len: usize,
    /// A data frame without FIN was handed on: a fragmented message is open.
    fragmented: bool,
}

impl<S> FrameBounded<S> {
    /// A socket whose first bytes are WebSocket frames.
    pub(super) fn frames(inner: S) -> Self {
        Self::new(inner, Part::FrameHeader)
    }

    /// A socket whose first bytes are the HTTP answer to an upgrade.
    pub(super) fn after_http_head(inner: S) -> Self {
        Self::new(inner, Part::HttpHead(0))
    }

    fn new(inner: S, part: Part) -> Self {
        FrameBounded {
            inner,
            ahead: Box::new([0; LOOKAHEAD]),
            start: 0,
            end: 0,
            part,
            header: [0; 14],
            header_len: 0,
            fragmented: false,
        }
    }

    /// Whether everything handed on ends a whole message: no frame and no
    /// fragmented message is half handed on. Then a `WebSocketStream` that
    /// has returned every message it was given holds no input.
    pub(super) fn quiescent(&self) -> bool {
        self.part == Part::FrameHeader && self.header_len == 0 && !self.fragmented
    }

    /// How many of the bytes read ahead may be handed on now: up to the end
    /// of the current HTTP head or frame.
    fn deliverable(&self) -> usize {
        let ahead = &self.ahead[self.start..self.end];
        match self.part {
            Part::HttpHead(mut seen) => {
                for (i, &b) in ahead.iter().enumerate() {
                    seen = next_crlf(seen, b);
                    if seen == 4 {
                        return i + 1;
                    }
                }
                ahead.len()
            }
            Part::Payload(left) => ahead.len().min(usize::try_from(left).unwrap_or(usize::MAX)),
            Part::FrameHeader => {
                let mut header = [0u8; 14];
                let have = self.header_len;
                header[..have].copy_from_slice(&self.header[..have]);
                let more = ahead.len().min(14 - have);
                header[have..have + more].copy_from_slice(&ahead[..more]);
                let Some(len) = header_len(&header[..have + more]) else {
                    return more;
                };
                let rest_of_header = len - have;
                if ahead.len() < rest_of_header {
                    return ahead.len();
                }
                let payload = payload_len(&header[..len]);
                rest_of_header + (ahead.len() - rest_of_header).min(usize::try_from(payload).unwrap_or(usize::MAX))
            }
        }
    }

    /// Follows `ahead[from..to]`, just handed on.
    fn follow(&mut self, mut from: usize, to: usize) {
        while from < to {
            match self.part {
                Part::HttpHead(seen) => {
                    let seen = next_crlf(seen, self.ahead[from]);
                    from += 1;
                    self.part = if seen == 4 {
                        Part::FrameHeader
                    } else {
                        Part::HttpHead(seen)
                    };
                }
                Part::Payload(left) => {
                    let n = (to - from).min(usize::try_from(left).unwrap_or(usize::MAX));
                    from += n;
                    let left = left - n as u64;
                    self.part = if left == 0 {
                        Part::FrameHeader
                    } else {
                        Part::Payload(left)
                    };
                }
                Part::FrameHeader => {
                    self.header[self.header_len] = self.ahead[from];
                    self.header_len += 1;
                    from += 1;
                    if header_len(&self.header[..self.header_len]) == Some(self.header_len) {
                        let header = &self.header[..self.header_len];
                        let (fin, opcode) = (header[0] & 0x80 != 0, header[0] & 0x0f);
                        // Data frames (continuation, text, binary) open or close a message.
                        if opcode <= 2 {
                            self.fragmented = !fin;
                        }
                        let payload = payload_len(header);
                        self.header_len = 0;
                        if payload > 0 {
                            self.part = Part::Payload(payload);
                        }
                    }
                }
            }
        }
    }
}

/// How much of `\r\n\r\n` is matched after `b`, given `seen` before it.
fn next_crlf(seen: usize, b: u8) -> usize {
    if b == b"\r\n\r\n"[seen] {
        seen + 1
    } else if b == b'\r' {
        1
    } else {
        0
    }
}

/// The length of a frame header that starts with `start`, once it says.
fn header_len(start: &[u8]) -> Option<usize> {
    let b1 = *start.get(1)?;
    let extended = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    Some(2 + extended + mask)
}

/// The payload length a whole frame header states.
fn payload_len(header: &[u8]) -> u64 {
    match header[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[2..10]);
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameBounded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.start == this.end {
            let mut buf = ReadBuf::new(&mut this.ahead[..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf))?;
            let n = buf.filled().len();
            (this.start, this.end) = (0, n);
            if n == 0 {
                return Poll::Ready(Ok(()));
            }
        }
        let n = this.deliverable().min(out.remaining());
        let (from, to) = (this.start, this.start + n);
        out.put_slice(&this.ahead[from..to]);
        this.follow(from, to);
        this.start = to;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameBounded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Reads `input` through the reader with room for `room` bytes a call;
    /// returns the pieces handed on and whether it was quiescent after each.
    async fn pieces(input: &[u8], http: bool, room: usize) -> Vec<(Vec<u8>, bool)> {
        let mut r = if http {
            FrameBounded::after_http_head(input)
        } else {
            FrameBounded::frames(input)
        };
        let mut out = Vec::new();
        loop {
            let mut buf = vec![0u8; room];
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                return out;
            }
            out.push((buf[..n].to_vec(), r.quiescent()));
        }
    }

    fn frame(fin: bool, opcode: u8, mask: bool, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | opcode];
        let m = if mask { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n <= 0xffff => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if mask {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend_from_slice(payload);
        f
    }

    #[tokio::test]
    async fn reads_end_at_each_frame_and_quiescence_follows_whole_messages() {
        let a = frame(true, 1, true, b"hello");
        let b = frame(false, 2, false, &[7; 300]);
        let ping = frame(true, 9, false, b"p");
        let c = frame(true, 0, false, &[8; 70_000]);
        let empty = frame(true, 1, false, b"");
        let input = [a.clone(), b.clone(), ping.clone(), c.clone(), empty.clone()].concat();
        let got = pieces(&input, false, 1 << 20).await;
        let joined: Vec<u8> = got.iter().flat_map(|(p, _)| p.clone()).collect();
        assert_eq!(joined, input, "every byte, in order");
        // Each piece lies within one frame; quiescent exactly at the end of
        // a whole message (not after the unfinished binary message's frame,
        // nor after the ping inside it).
        let mut at = 0;
        let ends = [
            a.len(),
            a.len() + b.len(),
            a.len() + b.len() + ping.len(),
            input.len() - empty.len(),
            input.len(),
        ];
        let quiescent_ends = [ends[0], ends[3], ends[4]];
        for (p, q) in &got {
            let start = at;
            at += p.len();
            let frame_end = *ends.iter().find(|e| **e > start).unwrap();
            assert!(at <= frame_end, "a read crossed a frame's end at {frame_end}");
            assert_eq!(*q, quiescent_ends.contains(&at), "quiescent after {at}");
        }
    }

    #[tokio::test]
    async fn an_http_head_ends_a_read_and_frames_follow() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        let f = frame(true, 1, false, b"{\"pushed\":1}");
        let input = [head.clone(), f.clone()].concat();
        let got = pieces(&input, true, 1 << 20).await;
        assert_eq!(got[0].0, head);
        assert!(got[0].1, "quiescent after the head");
        assert_eq!(got[1].0, f);
        assert!(got[1].1);
        // With one byte of room a call, the same bytes and the same ends.
        let tiny = pieces(&input, true, 1).await;
        assert_eq!(tiny.len(), input.len());
        assert!(tiny[head.len() - 1].1 && !tiny[head.len()].1 && tiny[input.len() - 1].1);
    }
}
