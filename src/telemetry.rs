//! Log output: tracing-subscriber, text or JSON, on stderr; and the settings
//! that choose it (`[log]` in the config file), which this module owns so that
//! `config` depends on it and not the other way round.
//!
//! Text by default, without ANSI colour unless stderr is a terminal (so
//! journald and files get clean lines); JSON with `log.format = "json"`, one
//! object a line with the event's fields at the top level, which is what log
//! shippers filter on. The level comes from `RUST_LOG` if set, else
//! `log.level`, else `info`, and can be changed by a reload. Filters are
//! `RUST_LOG`-style target lists (`info,hyper_util=debug`); span and field
//! filters are not supported, which keeps a regex engine out of the binary.
//! A filter that names no level, or turns logging off, is refused
//! ([`filter`]): the sidecar never runs with its error lines silenced.
//!
//! Under systemd, when stderr *is* the journal (`JOURNAL_STREAM` names the
//! device and inode of stderr), every line starts with its sd-daemon priority
//! (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug and trace), which
//! journald strips and records as the entry's PRIORITY, so
//! `journalctl -p warning -u ethgas-sidecar` shows exactly the warnings and
//! errors. The text lines then also drop their own timestamp: journald stamps
//! each entry. This is chosen over native journal entries (tracing-journald)
//! because it needs no socket beyond the stderr systemd already gave the
//! service, keeps the order with anything else written to stderr, keeps every
//! line the same text as off systemd (fields stay `key=value`, searchable
//! with `journalctl -g 'username="alice"'`), and adds no dependency.
//! Elsewhere stderr is written as it always was.
//!
//! Secrets never reach a log line: they live in `Secret`, whose formatting is a
//! mask, and the `Authorization` header value is marked sensitive (its `Debug`
//! prints "Sensitive"). HTTP/2 internals are capped at `info` unless asked for
//! by name, and `log`-crate records from dependencies (which could print raw
//! WebSocket frames) are not collected at all.

use std::io::{IsTerminal, Write};

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, fmt, reload};

/// The shape of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[log]`: what to log and how.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A level or `RUST_LOG`-style filter; `None` means `info`.
    pub level: Option<String>,
    pub format: LogFormat,
}

/// Changes the level of a running logger.
pub struct LogHandle {
    handle: reload::Handle<Targets, Registry>,
    from_env: bool,
}

/// A `RUST_LOG`-style filter: a default level and `target=level` pairs,
/// e.g. `info,ethgas_sidecar=debug,hyper_util=warn`. Besides tracing's level
/// names (any case), the syslog spellings that `journalctl -p` teaches are
/// understood: `warning`, `notice` (info), `err`, `crit`, `alert`, `emerg`
/// (error). A word that is none of these is refused, never read as a target
/// name (which would turn every other line off, errors included); so is
/// `off` as the default level. Without a default level it is `info`. HTTP/2
/// internals stay at `info` unless named.
pub fn filter(spec: &str) -> Result<Targets, String> {
    let mut default = None;
    let mut f = Targets::new();
    let mut names_h2 = false;
    for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match directive.split_once('=') {
            None => {
                let level = level(directive).ok_or_else(|| not_a_level(spec, directive))?;
                if level == LevelFilter::OFF {
                    return Err(format!(
                        "{spec:?} turns logging off, error lines included; the quietest level is \"error\""
                    ));
                }
                default = Some(level);
            }
            Some((target, word)) => {
                let target = target.trim();
                let valid =
                    !target.is_empty() && target.chars().all(|c| c.is_ascii_alphanumeric() || "_-:".contains(c));
                if !valid {
                    return Err(format!(
                        "{directive:?} in {spec:?}: {target:?} is not a target (a module path such as hyper_util)"
                    ));
                }
                let level = level(word.trim()).ok_or_else(|| not_a_level(spec, word.trim()))?;
                names_h2 |= target == "h2" || target.starts_with("h2::");
                f = f.with_target(target, level);
            }
        }
    }
    if !names_h2 {
        f = f.with_target("h2", tracing::Level::INFO);
    }
    Ok(f.with_default(default.unwrap_or(LevelFilter::INFO)))
}

/// A level word: tracing's names or syslog's, in any case.
fn level(word: &str) -> Option<LevelFilter> {
    Some(match word.to_ascii_lowercase().as_str() {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "info" | "notice" => LevelFilter::INFO,
        "warn" | "warning" => LevelFilter::WARN,
        "error" | "err" | "crit" | "critical" | "alert" | "emerg" => LevelFilter::ERROR,
        "off" => LevelFilter::OFF,
        _ => return None,
    })
}

fn not_a_level(spec: &str, word: &str) -> String {
    format!(
        "{word:?} in {spec:?} is not a level; use error, warn, info, debug or trace \
         (syslog's err, crit, warning and notice work too), or target=level pairs such as \"info,hyper_util=debug\""
    )
}

/// `RUST_LOG`, when set and not empty: it takes precedence over
/// `log.level`. An invalid one is an error that names it.
pub fn env_filter() -> Result<Option<String>, String> {
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match filter(&v) {
            Ok(_) => Ok(Some(v)),
            Err(e) => Err(format!("RUST_LOG: {e}")),
        },
        _ => Ok(None),
    }
}

type Formatter =
    Box<dyn Layer<tracing_subscriber::layer::Layered<reload::Layer<Targets, Registry>, Registry>> + Send + Sync>;

/// Installs the global subscriber. Fails if one is installed already.
pub fn init(settings: &LogSettings) -> Result<LogHandle, String> {
    let env = env_filter()?;
    let from_env = env.is_some();
    let spec = env.or_else(|| settings.level.clone()).unwrap_or_else(|| "info".into());
    let (layer, handle) = reload::Layer::new(filter(&spec)?);
    let registry = tracing_subscriber::registry().with(layer);
    let journal = stderr_is_journal();
    let writer = Stderr { journal };
    let formatter: Formatter = match settings.format {
        LogFormat::Text => {
            let text = fmt::layer()
                .with_writer(writer)
                .with_ansi(!journal && std::io::stderr().is_terminal())
                .with_target(false);
            if journal {
                Box::new(text.without_time())
            } else {
                Box::new(text)
            }
        }
        LogFormat::Json => Box::new(
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(writer),
        ),
    };
    registry.with(formatter).try_init().map_err(|e| e.to_string())?;
    Ok(LogHandle { handle, from_env })
}

impl LogHandle {
    /// Applies `log.level` from a reloaded config (unless `RUST_LOG` rules).
    pub fn set_level(&self, level: Option<&str>) -> Result<(), String> {
        if self.from_env {
            return Ok(());
        }
        let f = filter(level.unwrap_or("info"))?;
        self.handle.reload(f).map_err(|e| e.to_string())
    }
}

/// The sd-daemon (syslog) priority of a level: error 3, warning 4, info 6,
/// debug and trace 7.
fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Whether `JOURNAL_STREAM` ("DEV:INODE", as systemd sets it when it connects
/// stdout/stderr to the journal) names the file whose device and inode are
/// `dev` and `ino`. A service whose stderr was redirected elsewhere inherits
/// the variable but fails this test, as sd_journal_stream_fd(3) intends.
fn journal_stream_matches(var: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = var.trim().split_once(':') else {
        return false;
    };
    matches!((d.parse::<u64>(), i.parse::<u64>()), (Ok(d), Ok(i)) if d == dev && i == ino)
}

/// Whether stderr is connected to the journal.
pub(crate) fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(var) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    // fstat(2) on a duplicate of fd 2, without unsafe code.
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => journal_stream_matches(&var, m.dev(), m.ino()),
        Err(_) => false,
    }
}

/// `<N>` before every line of `text` (an event may span several lines).
fn prefix_lines(priority: u8, text: &[u8]) -> Vec<u8> {
    let prefix = format!("<{priority}>");
    let mut out = Vec::with_capacity(text.len() + 2 * prefix.len());
    for line in text.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(line);
    }
    out
}

/// Stderr for the fmt layer: one writer per event, which knows the event's
/// level.
#[derive(Clone, Copy)]
struct Stderr {
    journal: bool,
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        self.make_writer_at(&Level::INFO)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> EventWriter {
        self.make_writer_at(meta.level())
    }
}

impl Stderr {
    fn make_writer_at(&self, level: &Level) -> EventWriter {
        EventWriter {
            priority: self.journal.then(|| syslog_priority(level)),
            buf: Vec::new(),
        }
    }
}

/// Collects one event's output and writes it to stderr in one piece when
/// dropped, each line prefixed with the priority when stderr is the journal.
struct EventWriter {
    priority: Option<u8>,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let out = match self.priority {
            Some(p) => prefix_lines(p, &self.buf),
            None => std::mem::take(&mut self.buf),
        };
        // Nowhere to report a failed log write; the line is lost either way.
        let _ = std::io::stderr().lock().write_all(&out);
    }
}

#[cfg(test)]
mod tests;
