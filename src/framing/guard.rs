//! [`Guarded`]: a client connection whose bytes pass through the framing
//! guard on their way to and from hyper.
//!
//! Reads feed the request [`Tracker`]. Two answers that hyper would give
//! bare (or not at all) come in the API's envelope instead:
//!
//! - a request head that stalls gets a 408 at `proxy.header_read_timeout`
//!   (hyper's own header timer closes without a word), and nothing of
//!   hyper's follows it;
//! - a head that hyper refuses before the service sees it ([`Early`]) gets
//!   the same status with a message that says what to fix. hyper writes its
//!   bare error head last and then shuts the connection down; the guard holds
//!   back bytes that are exactly such a head and start where the answer to
//!   the refused request would start (every request before it answered), and
//!   replaces them only when the shutdown shows they were hyper's last word. Anything
//!   written after them, or a sign that hyper took the head after all (the
//!   service saw that request), lets them go out unchanged: when guard and
//!   hyper disagree, the client gets hyper's own answer.

use std::future::Future as _;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::debug;

use super::answers::{HeadLimits, Responses, error_head_at_end};
use super::{Early, Tracker, Verdicts};
use crate::envelope::Envelope;
use crate::error::ProxyError;
use crate::metrics::Metrics;

/// What the guard needs to answer in the sidecar's name, fixed for a
/// connection when it is accepted.
#[derive(Clone, Default)]
pub struct Answers {
    /// The envelope of the sidecar's answers (from the auth method).
    pub envelope: Envelope,
    /// The limits hyper was built with: the size of its read buffer, and
    /// the keys the answers name.
    pub limits: HeadLimits,
    /// Where the answers are counted (`local_responses_total`).
    pub metrics: Option<Arc<Metrics>>,
}

/// A client connection whose reads pass through a [`Tracker`] and whose
/// writes pass the answers that hyper makes by itself.
pub struct Guarded<S> {
    inner: S,
    tracker: Tracker,
    verdicts: Arc<Verdicts>,
    responses: Responses,
    answers: Answers,
    /// How long a started request head may take (`proxy.header_read_timeout`).
    head_timeout: Option<Duration>,
    /// Runs while a head is incomplete.
    head_timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The head timed out: the 408 went out, and nothing else may follow it.
    timed_out: bool,
    /// hyper's bytes that are its bare answer to the refused head, held back
    /// until the end of the stream shows they were its last.
    held: Vec<u8>,
    /// The sidecar's own answer on its way out, and how much of it has gone.
    own: Vec<u8>,
    own_sent: usize,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, verdicts: Arc<Verdicts>, answers: Answers) -> Guarded<S> {
        Guarded {
            inner,
            tracker: Tracker::with_limit(verdicts.clone(), answers.limits.max_buf()),
            verdicts,
            responses: Responses::default(),
            answers,
            head_timeout: None,
            head_timer: None,
            timed_out: false,
            held: Vec::new(),
            own: Vec::new(),
            own_sent: 0,
        }
    }

    /// Answers 408 and closes when a request head has started but not
    /// completed within `limit` (hyper's own header timeout closes without a
    /// word; this sees the raw bytes, so it can answer).
    pub fn with_head_timeout(mut self, limit: Duration) -> Guarded<S> {
        self.head_timeout = Some(limit);
        self
    }

    /// The refusal hyper is expected to answer, and the index of the refused
    /// request: the tracker saw a head hyper will refuse, and hyper has not
    /// passed that request on after all.
    fn armed(&self) -> Option<(u64, Early)> {
        let (index, early) = self.tracker.early()?;
        (!self.verdicts.seen(index)).then_some((index, early))
    }

    /// Queues the sidecar's answer, in its envelope, and counts it.
    fn answer(&mut self, error: &ProxyError) {
        if let Some(metrics) = &self.answers.metrics {
            metrics.local(error.reason());
        }
        debug!(status = error.status().as_u16(), error = %error, "answered a request head in the envelope");
        self.own = error.wire(self.answers.envelope);
        self.own_sent = 0;
    }
}

impl<S: AsyncWrite + Unpin> Guarded<S> {
    /// Writes what is left of the sidecar's own answer.
    fn poll_own(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some(rest) = self.own.get(self.own_sent..).filter(|r| !r.is_empty()) {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.own_sent += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Lets held bytes go out as hyper wrote them.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            let n = n.min(self.held.len());
            self.responses.feed(&self.held[..n], self.tracker.quiet());
            self.held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    /// Writes hyper's bytes through, following the responses they carry.
    fn poll_pass(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.responses.feed(buf.get(..n).unwrap_or(buf), self.tracker.quiet());
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        if this.timed_out {
            return Poll::Ready(Ok(()));
        }
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        match poll {
            Poll::Ready(Ok(())) => {
                this.tracker.feed(&buf.filled()[before..]);
                if this.responses.is_off() {
                    // Nobody will ask which answers are framed differently.
                    this.tracker.quiet().clear();
                }
                match (this.tracker.mid_head(), this.head_timeout) {
                    (true, Some(limit)) if this.head_timer.is_none() => {
                        this.head_timer = Some(Box::pin(tokio::time::sleep(limit)));
                    }
                    (false, _) => this.head_timer = None,
                    _ => {}
                }
            }
            Poll::Pending => {
                let expired = this.head_timer.as_mut().is_some_and(|t| t.as_mut().poll(cx).is_ready());
                if let (true, Some(limit)) = (expired, this.head_timeout) {
                    // Best effort: a fresh socket takes these few bytes at
                    // once; then the client reads the end of the stream.
                    this.answer(&ProxyError::SlowHead { limit });
                    let _ = this.poll_own(cx);
                    this.timed_out = true;
                    this.head_timer = None;
                    return Poll::Ready(Ok(()));
                }
            }
            Poll::Ready(Err(_)) => {}
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.timed_out {
            // Whatever hyper says about the cut-off head stays unsaid.
            let _ = this.poll_own(cx);
            return Poll::Ready(Ok(buf.len()));
        }
        // hyper wrote on after bytes that looked like its last answer: they
        // were not.
        ready!(this.poll_release(cx))?;
        if let Some((index, early)) = this.armed() {
            if let Some(start) = error_head_at_end(buf, early.status()) {
                if start > 0 {
                    // The end of an earlier response goes first, alone.
                    return this.poll_pass(cx, &buf[..start]);
                }
                // Where the answer to the refused request would start: every
                // request before it answered, nothing of another pending.
                if this.responses.at_boundary() && this.responses.answered() == index {
                    this.held = buf.to_vec();
                    return Poll::Ready(Ok(buf.len()));
                }
            }
        }
        this.poll_pass(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let watching = self.timed_out || !self.held.is_empty() || !self.responses.is_off();
        if watching {
            // One slice at a time, through the checks above (hyper is built
            // with `writev(false)`, so it does not come here).
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &**b);
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.timed_out {
            let _ = this.poll_own(cx);
        } else if !this.held.is_empty() && this.armed().is_none() {
            ready!(this.poll_release(cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if !this.held.is_empty() {
            match this.armed() {
                // The held bytes were hyper's last: its bare answer to the
                // refused head. The envelope goes instead.
                Some((_, early)) => {
                    this.held = Vec::new();
                    this.answer(&early.error(&this.answers.limits));
                }
                None => ready!(this.poll_release(cx))?,
            }
        }
        ready!(this.poll_own(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
