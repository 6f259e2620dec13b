//! The bodies of the responses the proxy hands back: streamed from the API,
//! made by the sidecar, or an API body whose first part was read ahead (a
//! 401 kept while the token is renewed) followed by the rest of its stream;
//! any of them [`Audited`] when the call is one the audit trail records.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::audit::Audited;
use crate::pool::PooledBody;

/// A response on its way to the client.
pub type Body = Either<Plain, Audited<Plain>>;

/// A response body before the audit trail.
pub type Plain = Either<PooledBody, Either<Full<Bytes>, Resumed>>;

/// A body made by the sidecar.
pub fn local(full: Full<Bytes>) -> Body {
    Either::Left(Either::Right(Either::Left(full)))
}

/// The API's body, streamed.
pub fn streamed(body: PooledBody) -> Body {
    Either::Left(Either::Left(body))
}

/// `body`, writing the call's audit record once it has gone out.
pub fn audited(body: Body, audit: impl FnOnce(Plain) -> Audited<Plain>) -> Body {
    match body {
        Either::Left(plain) => Either::Right(audit(plain)),
        already => already,
    }
}

/// An API body of which up to `limit` bytes are read now; what the client
/// gets later is the same body, whole.
pub async fn read_ahead(mut body: PooledBody, limit: usize) -> Body {
    let mut head = VecDeque::new();
    let mut kept = 0;
    while kept <= limit {
        match body.frame().await {
            None => return local(Full::new(concat(head))),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    kept += data.len();
                    head.push_back(data);
                }
            }
            // The API broke off: hand on what came.
            Some(Err(_)) => return local(Full::new(concat(head))),
        }
    }
    Either::Left(Either::Right(Either::Right(Resumed { head, rest: body })))
}

fn concat(parts: VecDeque<Bytes>) -> Bytes {
    match parts.len() {
        0 => Bytes::new(),
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => parts.into_iter().flatten().collect::<Vec<u8>>().into(),
    }
}

/// What was read ahead, then the rest of the stream.
pub struct Resumed {
    head: VecDeque<Bytes>,
    rest: PooledBody,
}

impl HttpBody for Resumed {
    type Data = Bytes;
    type Error = <PooledBody as HttpBody>::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.head.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
