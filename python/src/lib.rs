//! The `reprise._reprise` extension module: the blocking `Journal` handle and the exception
//! hierarchy of the `reprise` Python package. Every call that touches the disk releases the GIL.

// pyo3 0.22's #[pymethods] expansion converts PyErr into PyErr; clippy flags the macro output.
#![allow(clippy::useless_conversion)]
mod aio;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use reprise::{Config, Durability, Event, GuildId};
use serde_json::Value;

create_exception!(
    _reprise,
    Error,
    PyException,
    "Base class of every reprise error."
);
create_exception!(
    _reprise,
    InvalidEvent,
    Error,
    "The event was rejected; nothing was written."
);
create_exception!(_reprise, Corrupt, Error, "Stored data failed its checks.");
create_exception!(
    _reprise,
    Locked,
    Error,
    "Another handle holds the journal directory."
);
create_exception!(
    _reprise,
    Fenced,
    Error,
    "Another writer owns the guild in the remote store."
);
create_exception!(
    _reprise,
    Busy,
    Error,
    "A read-only handle could not get a consistent view: a writer kept changing the files it was reading. Try again."
);
create_exception!(
    _reprise,
    ReadOnly,
    Error,
    "A write was attempted through a handle opened with read_only=True; nothing was written."
);
create_exception!(
    _reprise,
    IoError,
    Error,
    "An I/O error from the file system."
);

/// Maps a library error to the Python exception of its kind; the message is the library's Display.
fn to_py_err(e: reprise::Error) -> PyErr {
    let message = e.to_string();
    py_err_of_kind(&e, message)
}

/// The Python exception of `e`'s kind, carrying `message`.
fn py_err_of_kind(e: &reprise::Error, message: String) -> PyErr {
    match e {
        reprise::Error::InvalidEvent { .. } | reprise::Error::EventTooLarge { .. } => {
            InvalidEvent::new_err(message)
        }
        reprise::Error::Corrupt(_) => Corrupt::new_err(message),
        reprise::Error::Locked { .. } => Locked::new_err(message),
        reprise::Error::Fenced { .. } => Fenced::new_err(message),
        reprise::Error::Busy { .. } => Busy::new_err(message),
        reprise::Error::ReadOnly => ReadOnly::new_err(message),
        reprise::Error::Io { .. } => IoError::new_err(message),
        _ => Error::new_err(message),
    }
}

/// Parses the `durability` argument (`"always"`, `"batched"`, `"none"`).
fn durability_from_str(s: &str) -> PyResult<Durability> {
    match s {
        "always" => Ok(Durability::Always),
        "batched" => Ok(Durability::Batched(Default::default())),
        "none" => Ok(Durability::None),
        other => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "durability must be \"always\", \"batched\" or \"none\", not {other:?}"
        ))),
    }
}

/// Converts a Python object (an event dict) to its JSON text via the `json` module.
fn to_json_text(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<String> {
    py.import_bound("json")?
        .call_method1("dumps", (obj,))?
        .extract()
}

/// Converts JSON to the Python object `json.loads` makes of it.
fn from_json_value(py: Python<'_>, value: &Value) -> PyResult<PyObject> {
    Ok(py
        .import_bound("json")?
        .call_method1("loads", (value.to_string(),))?
        .unbind())
}

/// Converts JSON text to the Python object `json.loads` makes of it.
fn from_json_text(py: Python<'_>, text: &str) -> PyResult<PyObject> {
    Ok(py
        .import_bound("json")?
        .call_method1("loads", (text,))?
        .unbind())
}

/// Parses one event dict (CONTRACT §1 JSON form); a bad one is `InvalidEvent`.
fn event_from_py(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Event> {
    if !obj.is_instance_of::<PyDict>() {
        return Err(InvalidEvent::new_err("an event must be a dict"));
    }
    let text = to_json_text(py, obj)?;
    Event::from_json(&text).map_err(|e| InvalidEvent::new_err(e.to_string()))
}

/// Every event of a Python iterable of dicts, in order (the first invalid one fails the lot).
pub(crate) fn events_from_py(py: Python<'_>, events: &Bound<'_, PyAny>) -> PyResult<Vec<Event>> {
    events.iter()?.map(|e| event_from_py(py, &e?)).collect()
}

/// The guild's Sonora snapshot file, stamped now (what `reprise state --format sonora` prints).
pub(crate) fn sonora_text_now(state: &reprise::GuildState) -> String {
    reprise::sonora::file_text(
        state,
        reprise::clock::now_unix_secs(),
        reprise::sonora::Sections::ALL,
    )
}

/// The Lavalink PATCH body of `restore` as JSON (what `reprise lavalink` prints).
pub(crate) fn lavalink_body_json(restore: &reprise::lavalink::Restore) -> PyResult<Value> {
    serde_json::to_value(&restore.patch)
        .map_err(|e| Error::new_err(format!("cannot write the Lavalink body as JSON: {e}")))
}

/// The `(name, text)` pairs `import_sonora` reads: each item of `files` is a path (str or
/// `os.PathLike`: the file is read) or a dict (a Sonora snapshot as `SessionSnapshot.to_dict()`
/// or `json.load` gives it; named `<dict N>` in messages).
pub(crate) fn sonora_inputs(
    py: Python<'_>,
    files: &Bound<'_, PyAny>,
) -> PyResult<Vec<(String, String)>> {
    let mut inputs = Vec::new();
    for (i, item) in files.iter()?.enumerate() {
        let item = item?;
        if item.is_instance_of::<PyDict>() {
            inputs.push((format!("<dict {i}>"), to_json_text(py, &item)?));
        } else {
            let path: std::path::PathBuf = item.extract()?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| IoError::new_err(format!("{}: {e}", path.display())))?;
            inputs.push((path.display().to_string(), text));
        }
    }
    Ok(inputs)
}

/// Maps an import error: a refused file is `InvalidEvent` (nothing written), a journal error
/// the exception of its kind.
pub(crate) fn import_err(e: reprise::import::ImportError) -> PyErr {
    match e {
        reprise::import::ImportError::Journal { file, source } => {
            let message = if file.is_empty() {
                source.to_string()
            } else {
                format!("{file}: {source}")
            };
            py_err_of_kind(&source, message)
        }
        // `Interrupted` (its message says how many files were imported) and the refused files.
        other => match other.journal_error() {
            Some(source) => py_err_of_kind(source, other.to_string()),
            None => InvalidEvent::new_err(other.to_string()),
        },
    }
}

/// One import result as a dict: `file`, `guild`, `events`, `first_seq`, `seq`.
pub(crate) fn imported_to_py(
    py: Python<'_>,
    done: &[reprise::import::Imported],
) -> PyResult<PyObject> {
    let list = PyList::empty_bound(py);
    for imported in done {
        let dict = PyDict::new_bound(py);
        dict.set_item("file", &imported.file)?;
        dict.set_item("guild", imported.guild.0)?;
        dict.set_item("events", imported.events)?;
        dict.set_item("first_seq", imported.first_seq)?;
        dict.set_item("seq", imported.seq)?;
        list.append(dict)?;
    }
    Ok(list.into_any().unbind())
}

/// The configuration both handles open with: `history_max` and the key in `key_file`.
fn config_of(key_file: Option<std::path::PathBuf>, history_max: Option<u32>) -> PyResult<Config> {
    let mut config = Config::default();
    if let Some(h) = history_max {
        config.history_max = h;
    }
    if let Some(file) = key_file {
        let key = reprise::crypto::Key::from_file(file).map_err(to_py_err)?;
        let keys =
            reprise::crypto::Keyring::new(key, []).map_err(|e| IoError::new_err(e.to_string()))?;
        config.keys = Some(keys);
    }
    Ok(config)
}

/// The blocking handle on one journal directory.
#[pyclass(module = "reprise._reprise")]
struct Journal {
    inner: Option<reprise::Journal>,
    /// Opened with `read_only=True`.
    read_only: bool,
}

impl Journal {
    fn journal(&mut self) -> PyResult<&mut reprise::Journal> {
        self.inner
            .as_mut()
            .ok_or_else(|| Error::new_err("the journal is closed"))
    }
}

#[pymethods]
impl Journal {
    /// Opens (creating if needed) the journal in `path`, taking its lock; with
    /// `read_only=True`, opens an existing journal for reading only: no lock is taken and
    /// nothing is written, so it works beside a live writer (another process's `Journal` or
    /// `reprise apply`); writes raise `ReadOnly`, and `refresh()` sees what the writer did since.
    #[new]
    #[pyo3(signature = (path, *, key_file=None, history_max=None, read_only=false))]
    fn new(
        py: Python<'_>,
        path: std::path::PathBuf,
        key_file: Option<std::path::PathBuf>,
        history_max: Option<u32>,
        read_only: bool,
    ) -> PyResult<Self> {
        let config = config_of(key_file, history_max)?;
        let inner = py
            .allow_threads(|| {
                if read_only {
                    reprise::Journal::open_read_only(path, config)
                } else {
                    reprise::Journal::open(path, config)
                }
            })
            .map_err(to_py_err)?;
        Ok(Journal {
            inner: Some(inner),
            read_only,
        })
    }

    /// Whether the handle was opened with `read_only=True`.
    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    /// A read-only handle forgets what it read, so that the next read sees the directory as
    /// a live writer has made it since; for a writer's handle (always current) it does nothing.
    fn refresh(&mut self, py: Python<'_>) -> PyResult<()> {
        let journal = self.journal()?;
        py.allow_threads(|| journal.refresh()).map_err(to_py_err)
    }

    /// The ids of every guild the journal holds, ascending.
    fn guilds(&mut self, py: Python<'_>) -> PyResult<Vec<u64>> {
        let journal = self.journal()?;
        py.allow_threads(move || journal.guilds())
            .map(|guilds| guilds.into_iter().map(|g| g.0).collect())
            .map_err(to_py_err)
    }

    /// Appends one event; returns its seq once acknowledged at `durability`.
    #[pyo3(signature = (guild, event, durability="always"))]
    fn append(
        &mut self,
        py: Python<'_>,
        guild: u64,
        event: &Bound<'_, PyAny>,
        durability: &str,
    ) -> PyResult<u64> {
        let event = event_from_py(py, event)?;
        let durability = durability_from_str(durability)?;
        let journal = self.journal()?;
        py.allow_threads(|| journal.append(GuildId(guild), &event, durability))
            .map_err(to_py_err)
    }

    /// Appends several events to one guild, all or nothing; returns their seqs.
    #[pyo3(signature = (guild, events, durability="always"))]
    fn append_many(
        &mut self,
        py: Python<'_>,
        guild: u64,
        events: &Bound<'_, PyAny>,
        durability: &str,
    ) -> PyResult<Vec<u64>> {
        let events = events_from_py(py, events)?;
        let durability = durability_from_str(durability)?;
        let journal = self.journal()?;
        py.allow_threads(|| journal.append_many(GuildId(guild), &events, durability))
            .map_err(to_py_err)
    }

    /// The guild's recovered state: `{"guild", "seq", ...state}` as `reprise state` prints it.
    fn state(&mut self, py: Python<'_>, guild: u64) -> PyResult<PyObject> {
        let journal = self.journal()?;
        let value = py
            .allow_threads(|| {
                journal
                    .state(GuildId(guild))
                    .map(reprise::GuildState::to_json)
            })
            .map_err(to_py_err)?;
        from_json_value(py, &value)
    }

    /// The guild's state as it was right after event `seq` (same shape as `state`).
    fn state_at(&mut self, py: Python<'_>, guild: u64, seq: u64) -> PyResult<PyObject> {
        let journal = self.journal()?;
        let value = py
            .allow_threads(|| journal.state_at(GuildId(guild), seq).map(|gs| gs.to_json()))
            .map_err(to_py_err)?;
        from_json_value(py, &value)
    }

    /// The guild's state as a Sonora snapshot file (a dict): what `reprise state --format sonora`
    /// prints, with a correct Sonora `checksum`.
    fn sonora(&mut self, py: Python<'_>, guild: u64) -> PyResult<PyObject> {
        let journal = self.journal()?;
        let text = py
            .allow_threads(|| journal.state(GuildId(guild)).map(sonora_text_now))
            .map_err(to_py_err)?;
        from_json_text(py, &text)
    }

    /// The Lavalink v4 `PATCH /v4/sessions/{sessionId}/players/{guildId}` body that restores the
    /// guild's player at `now_unix_ms` (default: now): what `reprise lavalink` prints.
    #[pyo3(signature = (guild, now_unix_ms=None))]
    fn lavalink(
        &mut self,
        py: Python<'_>,
        guild: u64,
        now_unix_ms: Option<u64>,
    ) -> PyResult<PyObject> {
        let journal = self.journal()?;
        let now = now_unix_ms.unwrap_or_else(reprise::clock::now_unix_ms);
        let restore = py
            .allow_threads(|| {
                journal.lavalink_restore(GuildId(guild), now, reprise::sonora::Sections::ALL)
            })
            .map_err(to_py_err)?;
        from_json_value(py, &lavalink_body_json(&restore)?)
    }

    /// Writes a snapshot of one guild (or of every guild with `guild=None`) now.
    #[pyo3(signature = (guild=None))]
    fn snapshot(&mut self, py: Python<'_>, guild: Option<u64>) -> PyResult<()> {
        let journal = self.journal()?;
        py.allow_threads(|| -> reprise::Result<()> {
            let guilds = match guild {
                Some(g) => vec![GuildId(g)],
                None => journal.guilds()?,
            };
            for g in guilds {
                journal.snapshot_now(g)?;
            }
            Ok(())
        })
        .map_err(to_py_err)
    }

    /// Imports Sonora snapshot files (paths or dicts), each becoming the state of its guild, as
    /// `reprise import` does: every file is checked first (JSON, Sonora checksum, schema) and
    /// nothing is written unless all are valid (`InvalidEvent` otherwise); the imported events
    /// are durable when it returns. Returns one dict per file (`file`, `guild`, `events`,
    /// `first_seq`, `seq`).
    fn import_sonora(&mut self, py: Python<'_>, files: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        let inputs = sonora_inputs(py, files)?;
        let journal = self.journal()?;
        let done = py
            .allow_threads(|| reprise::import::import_sonora(journal, &inputs))
            .map_err(import_err)?;
        imported_to_py(py, &done)
    }

    /// Checks every file; returns the findings as dicts, one line of `reprise verify` each
    /// (`guild`, `file`, `offset`, `kind`, `expected`, `actual`, `detail`). Empty: no finding.
    /// A finding of kind `torn_tail` is harmless.
    fn verify(&mut self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let journal = self.journal()?;
        let report = py.allow_threads(|| journal.verify()).map_err(to_py_err)?;
        let findings = report
            .findings
            .iter()
            .map(|f| from_json_value(py, &f.to_json()))
            .collect::<PyResult<Vec<PyObject>>>()?;
        Ok(PyList::new_bound(py, findings).unbind())
    }

    /// Flushes and releases the directory; later calls raise `reprise.Error`.
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        match self.inner.take() {
            Some(journal) => py.allow_threads(|| journal.close()).map_err(to_py_err),
            None => Ok(()),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(
        &mut self,
        py: Python<'_>,
        _args: &Bound<'_, pyo3::types::PyTuple>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }
}

/// The extension module.
#[pymodule]
fn _reprise(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Journal>()?;
    m.add_class::<aio::Reprise>()?;
    m.add_class::<aio::Subscription>()?;
    m.add_function(wrap_pyfunction!(aio::open, m)?)?;
    let before_exit = wrap_pyfunction!(aio::_before_exit, m)?;
    py.import_bound("atexit")?
        .call_method1("register", (before_exit,))?;
    m.add("Error", py.get_type_bound::<Error>())?;
    m.add("InvalidEvent", py.get_type_bound::<InvalidEvent>())?;
    m.add("Corrupt", py.get_type_bound::<Corrupt>())?;
    m.add("Locked", py.get_type_bound::<Locked>())?;
    m.add("Fenced", py.get_type_bound::<Fenced>())?;
    m.add("IoError", py.get_type_bound::<IoError>())?;
    m.add("Busy", py.get_type_bound::<Busy>())?;
    m.add("ReadOnly", py.get_type_bound::<ReadOnly>())?;
    Ok(())
}
