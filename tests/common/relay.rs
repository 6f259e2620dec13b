//! A raw-TCP relay in front of the mock API that keeps every byte the
//! sidecar sends it, one buffer per connection, and reads them back as the
//! API's HTTP/1 parser would: what reached the API, and whether it was
//! framed well (heads that parse, bodies by `Content-Length` or chunks, no
//! bytes left over).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the API read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// The bytes sent on one connection.
type Sent = Arc<Mutex<Vec<u8>>>;

/// The relay: point the sidecar at `addr`.
pub struct Relay {
    pub addr: SocketAddr,
    sent: Arc<Mutex<Vec<Sent>>>,
}

impl Relay {
    /// Relays every connection to `api`.
    pub async fn start(api: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
        let all = sent.clone();
        tokio::spawn(async move {
            while let Ok((from, _)) = listener.accept().await {
                let Ok(to) = TcpStream::connect(api).await else {
                    continue;
                };
                let record = Sent::default();
                all.lock().unwrap().push(record.clone());
                let (mut from_read, mut from_write) = from.into_split();
                let (mut to_read, mut to_write) = to.into_split();
                tokio::spawn(async move {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        // Kept before the API can read it: once the API has
                        // answered, its request is here.
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                        if to_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = to_write.shutdown().await;
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut to_read, &mut from_write).await;
                    let _ = from_write.shutdown().await;
                });
            }
        });
        Relay { addr, sent }
    }

    /// Every request the API was sent, connection by connection; panics
    /// if a connection's bytes are not whole, well-framed requests.
    pub fn requests(&self) -> Vec<Seen> {
        let connections: Vec<Vec<u8>> = self
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.lock().unwrap().clone())
            .collect();
        connections
            .iter()
            .flat_map(|bytes| {
                parse_all(bytes).unwrap_or_else(|e| {
                    panic!(
                        "the API was sent ill-framed bytes ({e}): {:?}",
                        String::from_utf8_lossy(bytes)
                    )
                })
            })
            .collect()
    }

    /// The requests the API was sent besides the account's logins.
    pub fn forwarded(&self) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|r| !r.path.contains("/login"))
            .collect()
    }
}

/// Reads `bytes` as a sequence of whole HTTP/1.1 requests.
fn parse_all(mut bytes: &[u8]) -> Result<Vec<Seen>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        let head = match req.parse(bytes) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Err("a partial head".into()),
            Err(e) => return Err(format!("a head that does not parse: {e}")),
        };
        let get_all = |name: &str| -> Vec<String> {
            req.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
                .collect()
        };
        let (lengths, codings) = (get_all("content-length"), get_all("transfer-encoding"));
        if !codings.is_empty() && !lengths.is_empty() || lengths.len() > 1 || get_all("host").len() > 1 {
            return Err(format!("an ambiguous head: lengths {lengths:?}, codings {codings:?}"));
        }
        let seen = |body| Seen {
            method: req.method.unwrap_or("").to_string(),
            path: req.path.unwrap_or("").to_string(),
            body,
        };
        let rest = &bytes[head..];
        if codings.is_empty() {
            let length: usize = match lengths.first() {
                Some(l) => l.parse().map_err(|_| format!("Content-Length {l:?}"))?,
                None => 0,
            };
            let body = rest.get(..length).ok_or("a partial body")?;
            out.push(seen(body.to_vec()));
            bytes = &rest[length..];
        } else if codings == ["chunked"] {
            let (body, used) = dechunk(rest)?;
            out.push(seen(body));
            bytes = &rest[used..];
        } else {
            return Err(format!("codings {codings:?}"));
        }
    }
    Ok(out)
}

/// A chunked body: its bytes, and how many bytes it took (trailers included).
fn dechunk(bytes: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let line = |at: usize| -> Result<(&[u8], usize), String> {
        let rest = bytes.get(at..).ok_or("a partial chunk")?;
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a partial chunk line")?;
        Ok((&rest[..end], at + end + 2))
    };
    let (mut body, mut at) = (Vec::new(), 0);
    loop {
        let (size_line, next) = line(at)?;
        let size_text = String::from_utf8_lossy(size_line);
        let size_text = size_text.split(';').next().unwrap_or("");
        if size_text.is_empty() || !size_text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("chunk size {size_text:?}"));
        }
        let size = usize::from_str_radix(size_text, 16).map_err(|e| e.to_string())?;
        if size == 0 {
            // Trailer lines up to an empty one.
            at = next;
            loop {
                let (trailer, after) = line(at)?;
                at = after;
                if trailer.is_empty() {
                    return Ok((body, at));
                }
            }
        }
        let data = bytes.get(next..next + size).ok_or("a partial chunk")?;
        body.extend_from_slice(data);
        if bytes.get(next + size..next + size + 2) != Some(b"\r\n") {
            return Err("a chunk without its CRLF".into());
        }
        at = next + size + 2;
    }
}
