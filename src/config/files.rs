//! Reading the files an operator names (the config file, secret files,
//! `upstream.ca_file`): regular files only, each with a size limit checked
//! before reading.
//!
//! A mistaken path must fail at once with a message, never hang or eat
//! memory: a FIFO with no writer would block `open(2)` and `read(2)` forever
//! (a reload never finishes, a stop never completes), `/dev/zero` would read
//! until memory runs out. So the path is checked with `stat(2)` first, opened
//! without blocking (`O_NONBLOCK`, which a regular file ignores), checked again
//! on the open descriptor (so a file swapped in between is caught), its size
//! compared with the limit, and the read itself bounded by the limit in case
//! the size changes while it is read. Regular files are the only kind read,
//! so no read waits on another process.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use super::ConfigError;

/// Largest config file read (the shipped example is under 10 KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest `upstream.ca_file` (the whole Mozilla bundle is about 220 KiB).
pub const MAX_CA_FILE_BYTES: u64 = 4 << 20;
/// Largest secret file: password, hex key, keystore password, keystore.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
const O_NONBLOCK: i32 = libc::O_NONBLOCK;
// Without the constant, the `stat(2)` before opening is the guard.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
const O_NONBLOCK: i32 = 0;

/// What a path names, for a refusal: "a FIFO", "a directory", ….
fn kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

fn refuse(meta: &std::fs::Metadata, limit: u64) -> std::io::Result<()> {
    if let Some(kind) = kind(meta) {
        return Err(std::io::Error::other(format!(
            "it is {kind}; only a regular file is read"
        )));
    }
    if meta.len() > limit {
        return Err(too_large(limit));
    }
    Ok(())
}

fn too_large(limit: u64) -> std::io::Error {
    std::io::Error::other(format!(
        "larger than the {} accepted; is it the right file?",
        bytes(limit)
    ))
}

/// `64 KiB`, `1 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// Opens `path` for reading if it is a regular file of at most `limit`
/// bytes; never blocks on a FIFO. The metadata is that of the open file.
pub(crate) fn open_regular(path: &Path, limit: u64) -> std::io::Result<(File, std::fs::Metadata)> {
    refuse(&std::fs::metadata(path)?, limit)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    refuse(&meta, limit)?;
    Ok((file, meta))
}

/// Reads the whole of a regular file of at most `limit` bytes into `into`
/// (which should have room for `limit + 1` bytes, so that a secret's buffer
/// never grows and leaves copies behind). Returns the open file's metadata.
pub(crate) fn read_into(path: &Path, limit: u64, into: &mut String) -> std::io::Result<std::fs::Metadata> {
    let (file, meta) = open_regular(path, limit)?;
    file.take(limit + 1).read_to_string(into)?;
    if into.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(meta)
}

/// The bytes of a regular file of at most `limit` bytes.
pub(crate) fn read_bytes(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let (file, meta) = open_regular(path, limit)?;
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

/// The text of a config file: a regular file no larger than
/// [`MAX_CONFIG_BYTES`], that not every user may change.
pub fn read_config_text(path: &Path) -> Result<String, ConfigError> {
    let read = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    let meta = read_into(path, MAX_CONFIG_BYTES, &mut text).map_err(read)?;
    super::secrets::not_world_writable(path, &meta).map_err(|message| ConfigError::Syntax {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_a_directory_and_a_device_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let err = read_bytes(&fifo, 10).unwrap_err().to_string();
        assert!(err.contains("FIFO") && err.contains("regular file"), "{err}");
        let err = read_bytes(dir.path(), 10).unwrap_err().to_string();
        assert!(err.contains("directory"), "{err}");
        let err = read_bytes(Path::new("/dev/zero"), 10).unwrap_err().to_string();
        assert!(err.contains("device"), "{err}");
    }

    #[test]
    fn the_limit_is_checked_before_reading_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, vec![b'a'; 2048]).unwrap();
        assert_eq!(read_bytes(&f, 2048).unwrap().len(), 2048);
        let err = read_bytes(&f, 1024).unwrap_err().to_string();
        assert!(err.contains("1 KiB"), "{err}");
        let mut s = String::new();
        assert!(read_into(&f, 1024, &mut s).is_err());
        assert!(s.is_empty(), "nothing read");
    }
}
