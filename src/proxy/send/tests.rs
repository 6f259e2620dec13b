//! Unit tests of `send`: which failures are the sidecar's own lack of file
//! descriptors (a 503 with `Retry-After`, not a 502 blaming the API).

use std::fmt;

use super::*;

/// A layer of a connector's error that keeps its cause as its source, as
/// hyper-util's and rustls' connectors do.
#[derive(Debug)]
struct Layer(&'static str, Box<dyn Error + Send + Sync>);

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Error for Layer {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.1.as_ref())
    }
}

fn connect(e: impl Error + Send + Sync + 'static) -> PoolError {
    PoolError::Connect(Box::new(e))
}

#[test]
fn fd_exhaustion_is_found_anywhere_in_the_chain() {
    for code in [libc::EMFILE, libc::ENFILE] {
        let os = || io::Error::from_raw_os_error(code);
        assert!(out_of_descriptors(&connect(os())), "{code} at the top");
        let chained = Layer("tcp connect error", Box::new(Layer("socket", Box::new(os()))));
        assert!(out_of_descriptors(&connect(chained)), "{code} two sources down");
        // io::Error::other hides its inner error from source(): still found.
        let wrapped = Layer("tls", Box::new(io::Error::other(Layer("tcp", Box::new(os())))));
        assert!(out_of_descriptors(&connect(wrapped)), "{code} inside an io::Error");
    }
}

#[test]
fn other_failures_are_the_apis() {
    let refused = Layer(
        "tcp connect error",
        Box::new(io::Error::from_raw_os_error(libc::ECONNREFUSED)),
    );
    assert!(!out_of_descriptors(&connect(refused)));
    // The words alone do not count: only the error code does.
    let text = io::Error::other("Too many open files (os error 24)");
    assert!(!out_of_descriptors(&connect(Layer(
        "tcp connect error",
        Box::new(text)
    ))));
}
