//! The HTTP/1 message framing that both directions of a connection follow: a
//! head, then a body of fixed length, chunked, or none, then the next head.
//! What a head means (which body follows, whether to stop) is the caller's:
//! requests in [`super::Tracker`], responses in [`super::answers::Responses`].

/// The most of a head (or a chunk-size or trailer line) kept across reads: a
/// memory bound above the largest read buffer hyper is given, so the request
/// side refuses at hyper's own limit first.
pub(super) const MAX_HEAD: usize = 4 * 1024 * 1024 + 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Head,
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data: bytes still to skip.
    ChunkEnd(u8),
    Trailers,
    /// Not following any more.
    Off,
}

/// What a head parser made of the bytes at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Head {
    /// Not all of it yet.
    Partial,
    /// `used` bytes of head, followed by a body framed as `next` (`Head` for
    /// none, `Off` to stop following after it).
    Complete { used: usize, next: Phase },
    /// Stop following now.
    Stop,
}

/// Where one direction of a connection is in its messages.
#[derive(Debug)]
pub(super) struct Framing {
    pub(super) phase: Phase,
    /// A head (or a chunk-size or trailer line) split across reads.
    pub(super) pending: Vec<u8>,
}

impl Default for Framing {
    fn default() -> Self {
        Framing {
            phase: Phase::Head,
            pending: Vec::new(),
        }
    }
}

impl Framing {
    /// Whether part of a head has arrived and the rest has not.
    pub(super) fn mid_head(&self) -> bool {
        self.phase == Phase::Head && !self.pending.is_empty()
    }

    /// Whether the next byte starts a new message.
    pub(super) fn at_boundary(&self) -> bool {
        self.phase == Phase::Head && self.pending.is_empty()
    }

    pub(super) fn stop(&mut self) {
        self.phase = Phase::Off;
        self.pending = Vec::new();
    }

    /// Follows `data`, the next bytes of the stream; `head` reads a head at
    /// the start of the buffer it is given (all of the head so far).
    pub(super) fn feed(&mut self, data: &[u8], head: &mut dyn FnMut(&[u8]) -> Head) {
        let mut data = data;
        while !data.is_empty() {
            match self.phase {
                Phase::Off => return,
                Phase::Head if self.pending.is_empty() => match head(data) {
                    Head::Complete { used, next } => {
                        self.phase = next;
                        data = data.get(used..).unwrap_or_default();
                    }
                    Head::Partial => {
                        self.stash(data);
                        return;
                    }
                    Head::Stop => return self.stop(),
                },
                Phase::Head => {
                    self.stash(data);
                    let buf = std::mem::take(&mut self.pending);
                    match head(&buf) {
                        Head::Complete { used, next } => {
                            self.phase = next;
                            // Whatever followed the head goes round again.
                            self.feed(buf.get(used..).unwrap_or_default(), head);
                        }
                        Head::Partial => self.pending = buf,
                        Head::Stop => self.stop(),
                    }
                    return;
                }
                Phase::Fixed(n) => {
                    let k = (data.len() as u64).min(n);
                    data = &data[k as usize..];
                    self.phase = if n == k { Phase::Head } else { Phase::Fixed(n - k) };
                }
                Phase::ChunkData(n) => {
                    let k = (data.len() as u64).min(n);
                    data = &data[k as usize..];
                    self.phase = if n == k {
                        Phase::ChunkEnd(2)
                    } else {
                        Phase::ChunkData(n - k)
                    };
                }
                Phase::ChunkEnd(n) => {
                    // CRLF; a bare LF ends it too.
                    if data[0] == b'\n' {
                        self.phase = Phase::ChunkSize;
                    } else {
                        self.phase = if n <= 1 {
                            Phase::ChunkSize
                        } else {
                            Phase::ChunkEnd(n - 1)
                        };
                    }
                    data = &data[1..];
                }
                // hyper ends a trailer line only at CRLF: a bare LF is part
                // of the line (and of the trailers), never their end.
                Phase::Trailers => match crlf(&self.pending, data) {
                    None => {
                        self.stash(data);
                        return;
                    }
                    Some(nl) => {
                        let mut line = std::mem::take(&mut self.pending);
                        line.extend_from_slice(&data[..nl]);
                        data = &data[nl + 1..];
                        self.line(&line);
                    }
                },
                Phase::ChunkSize => match data.iter().position(|b| *b == b'\n') {
                    None => {
                        self.stash(data);
                        return;
                    }
                    Some(nl) => {
                        let mut line = std::mem::take(&mut self.pending);
                        line.extend_from_slice(&data[..nl]);
                        data = &data[nl + 1..];
                        self.line(&line);
                    }
                },
            }
        }
    }

    /// Keeps the start of a head or line for the next read: at most
    /// `MAX_HEAD` bytes of it, which the head parsers refuse as too long.
    fn stash(&mut self, data: &[u8]) {
        let room = MAX_HEAD.saturating_sub(self.pending.len());
        self.pending.extend_from_slice(data.get(..room).unwrap_or(data));
    }

    /// A chunk-size line or a trailer line (without its LF; a trailer line
    /// ends with CR).
    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.phase == Phase::Trailers {
            if line.is_empty() {
                self.phase = Phase::Head;
            }
            return;
        }
        let digits = line.split(|b| *b == b';').next().unwrap_or(b"");
        let text = std::str::from_utf8(digits).unwrap_or("").trim();
        self.phase = match u64::from_str_radix(text, 16) {
            Ok(0) => Phase::Trailers,
            Ok(n) => Phase::ChunkData(n),
            Err(_) => Phase::Off,
        };
    }
}

/// Where in `data` the first LF that follows a CR is (the CR may be the last
/// byte kept from an earlier read, in `pending`).
fn crlf(pending: &[u8], data: &[u8]) -> Option<usize> {
    data.iter().enumerate().position(|(i, b)| {
        *b == b'\n'
            && match i {
                0 => pending.last() == Some(&b'\r'),
                _ => data[i - 1] == b'\r',
            }
    })
}
