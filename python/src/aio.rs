//! The asyncio handle: `reprise.open(path, ...)` -> `reprise.Reprise` over the Rust runtime
//! (`reprise::Reprise`, group commit across tasks).
//!
//! The bridge: each coroutine method creates an asyncio future on the running loop
//! (`loop.create_future()`), spawns the Rust future on one process-wide tokio runtime, and
//! returns the asyncio future (awaitable). When the Rust future completes, the tokio task takes
//! the GIL only to hand the outcome to the loop with `loop.call_soon_threadsafe(_resolve, ...)`,
//! which sets the result (or exception) on the loop's own thread unless the future was
//! cancelled meanwhile. The event loop never blocks on a durable append.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyStopAsyncIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use reprise::GuildId;

use crate::{
    durability_from_str, event_from_py, events_from_py, from_json_text, from_json_value,
    lavalink_body_json, sonora_text_now, to_py_err, Error,
};

/// The process-wide tokio runtime every `Reprise` handle runs on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("reprise-asyncio")
            .enable_all()
            .build()
            .expect("cannot start the reprise tokio runtime")
    })
}

/// How many tokio threads are inside (or about to enter) `Python::with_gil` to hand an outcome
/// to the event loop.
static HANDING_OUT: AtomicUsize = AtomicUsize::new(0);
/// Set by [`_before_exit`]: the interpreter is shutting down, outcomes are dropped.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Runs `f` with the GIL unless the interpreter is exiting. A thread that takes (or waits for)
/// the GIL while CPython finalizes is ended by `pthread_exit`, which aborts the process when it
/// unwinds through Rust frames: `call_soon_threadsafe` releases the GIL to write the loop's wake-up
/// byte, so without this the main thread could finish and finalize before the tokio thread takes
/// the GIL back (an unclosed `Reprise` made `python script.py` exit with SIGABRT now and then).
fn with_gil_unless_exiting(f: impl FnOnce(Python<'_>)) {
    HANDING_OUT.fetch_add(1, Ordering::SeqCst);
    if !EXITING.load(Ordering::SeqCst) {
        Python::with_gil(f);
    }
    HANDING_OUT.fetch_sub(1, Ordering::SeqCst);
}

/// Registered with `atexit` (which runs before CPython starts finalizing): from now on no
/// outcome is handed to Python, and the threads already handing one out finish first (the GIL
/// released meanwhile; at most 5 s).
#[pyfunction]
pub(crate) fn _before_exit(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    py.allow_threads(|| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while HANDING_OUT.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Sets `value` as the result (`ok`) or exception of `future` unless it is already done
/// (cancelled). Runs on the event loop's thread, scheduled by `call_soon_threadsafe`.
#[pyfunction]
fn _resolve(future: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if future.call_method0("done")?.extract::<bool>()? {
        return Ok(());
    }
    let setter = if ok { "set_result" } else { "set_exception" };
    future.call_method1(setter, (value,))?;
    Ok(())
}

/// Runs `work` on the tokio runtime and returns an asyncio future of `convert(its output)`.
fn spawn_awaitable<T, F, C>(py: Python<'_>, work: F, convert: C) -> PyResult<PyObject>
where
    T: Send + 'static,
    F: Future<Output = PyResult<T>> + Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<PyObject> + Send + 'static,
{
    let event_loop = py
        .import_bound("asyncio")?
        .call_method0("get_running_loop")?;
    let future = event_loop.call_method0("create_future")?;
    let resolve = wrap_pyfunction_bound!(_resolve, py)?.unbind();
    let event_loop = event_loop.unbind();
    let handed = future.clone().unbind();
    runtime().spawn(async move {
        let outcome = work.await;
        with_gil_unless_exiting(|py| {
            let (ok, value) = match outcome.and_then(|t| convert(py, t)) {
                Ok(value) => (true, value),
                Err(err) => (false, err.into_value(py).into_any()),
            };
            // The loop may be closed by now: nobody awaits the future then.
            let _ =
                event_loop.call_method1(py, "call_soon_threadsafe", (resolve, handed, ok, value));
        });
    });
    Ok(future.unbind())
}

/// The asyncio handle on one journal directory (`await reprise.open(path)`).
#[pyclass(module = "reprise._reprise")]
pub(crate) struct Reprise {
    inner: reprise::Reprise,
}

/// `await reprise.open(path, *, key_file=None, history_max=None)`: opens the journal in `path`
/// (creating it) under the Rust runtime; resolves to a `reprise.Reprise`.
#[pyfunction]
#[pyo3(signature = (path, *, key_file=None, history_max=None))]
pub(crate) fn open(
    py: Python<'_>,
    path: std::path::PathBuf,
    key_file: Option<std::path::PathBuf>,
    history_max: Option<u32>,
) -> PyResult<PyObject> {
    let config = crate::config_of(key_file, history_max)?;
    spawn_awaitable(
        py,
        async move {
            reprise::Reprise::open(path, config)
                .await
                .map_err(to_py_err)
        },
        |py, inner| Ok(Py::new(py, Reprise { inner })?.into_any()),
    )
}

#[pymethods]
impl Reprise {
    /// Appends one event; resolves to its seq once acknowledged at `durability`.
    #[pyo3(signature = (guild, event, durability="always"))]
    fn append(
        &self,
        py: Python<'_>,
        guild: u64,
        event: &Bound<'_, PyAny>,
        durability: &str,
    ) -> PyResult<PyObject> {
        let event = event_from_py(py, event)?;
        let durability = durability_from_str(durability)?;
        let inner = self.inner.clone();
        spawn_awaitable(
            py,
            async move {
                inner
                    .append_with(GuildId(guild), event, durability)
                    .await
                    .map_err(to_py_err)
            },
            |py, seq| Ok(seq.into_py(py)),
        )
    }

    /// Appends several events to one guild, all or nothing; resolves to their seqs.
    #[pyo3(signature = (guild, events, durability="always"))]
    fn append_many(
        &self,
        py: Python<'_>,
        guild: u64,
        events: &Bound<'_, PyAny>,
        durability: &str,
    ) -> PyResult<PyObject> {
        let events = events_from_py(py, events)?;
        let durability = durability_from_str(durability)?;
        let inner = self.inner.clone();
        spawn_awaitable(
            py,
            async move {
                inner
                    .append_many_with(GuildId(guild), events, Some(durability))
                    .await
                    .map_err(to_py_err)
            },
            |py, seqs| Ok(seqs.into_py(py)),
        )
    }

    /// Resolves to the guild's state (`{"guild", "seq", ...}`, what `reprise state` prints).
    fn state(&self, py: Python<'_>, guild: u64) -> PyResult<PyObject> {
        let inner = self.inner.clone();
        spawn_awaitable(
            py,
            async move { inner.state(GuildId(guild)).await.map_err(to_py_err) },
            |py, gs| from_json_value(py, &gs.to_json()),
        )
    }

    /// Resolves to the guild's state right after event `seq`.
    fn state_at(&self, py: Python<'_>, guild: u64, seq: u64) -> PyResult<PyObject> {
        let inner = self.inner.clone();
        spawn_awaitable(
            py,
            async move { inner.state_at(GuildId(guild), seq).await.map_err(to_py_err) },
            |py, gs| from_json_value(py, &gs.to_json()),
        )
    }

    /// Resolves to the guild's Sonora snapshot file (what `reprise state --format sonora` prints).
    fn sonora(&self, py: Python<'_>, guild: u64) -> PyResult<PyObject> {
        let inner = self.inner.clone();
        spawn_awaitable(
            py,
            async move {
                let gs = inner.state(GuildId(guild)).await.map_err(to_py_err)?;
                Ok(sonora_text_now(&gs))
            },
            |py, text| from_json_text(py, &text),
        )
    }

    /// Resolves to the Lavalink v4 PATCH body that restores the guild's player at `now_unix_ms`
    /// (default: now), what `reprise lavalink` prints.
    #[pyo3(signature = (guild, now_unix_ms=None))]
    fn lavalink(&self, py: Python<'_>, guild: u64, now_unix_ms: Option<u64>) -> PyResult<PyObject> {
        let inner = self.inner.clone();
        let now = now_unix_ms.unwrap_or_else(reprise::clock::now_unix_ms);
        spawn_awaitable(
            py,
            async move {
                let restore = inner
                    .lavalink_restore(GuildId(guild), now, reprise::sonora::Sections::ALL)
                    .await
                    .map_err(to_py_err)?;
                lavalink_body_json(&restore)
            },
            |py, value| from_json_value(py, &value),
        )
    }

    /// Writes a snapshot of `guild` now; resolves once it is durable (to its seq, or None for
    /// a guild without events).
    fn snapshot(&self, py: Python<'_>, guild: u64) -> PyResult<PyObject> {
        let inner = self.inner.clone();
        spawn_awaitable(
            py,
            async move { inner.snapshot_now(GuildId(guild)).await.map_err(to_py_err) },
            |py, seq| Ok(seq.into_py(py)),
        )
    }

    /// Imports Sonora snapshot files (paths or dicts) as `Journal.import_sonora` does; resolves
    /// to one dict per file once the imported events are durable.
    fn import_sonora(&self, py: Python<'_>, files: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        let inputs = crate::sonora_inputs(py, files)?;
        let inner = self.inner.clone();
        spawn_awaitable(
            py,
            async move { inner.import_sonora(inputs).await.map_err(crate::import_err) },
            |py, done| crate::imported_to_py(py, &done),
        )
    }

    /// Subscribes to the guild's events from now on; resolves to an async iterator of
    /// `{"seq", "event"}` dicts, in order, as they are acknowledged.
    fn subscribe(&self, py: Python<'_>, guild: u64) -> PyResult<PyObject> {
        let inner = self.inner.clone();
        spawn_awaitable(
            py,
            async move { inner.subscribe(GuildId(guild)).await.map_err(to_py_err) },
            |py, subscription| {
                let it = Subscription {
                    inner: Arc::new(tokio::sync::Mutex::new(subscription)),
                };
                Ok(Py::new(py, it)?.into_any())
            },
        )
    }

    /// Flushes everything, stops the runtime's writer and releases the directory.
    fn close(&self, py: Python<'_>) -> PyResult<PyObject> {
        let inner = self.inner.clone();
        spawn_awaitable(
            py,
            async move { inner.shutdown().await.map_err(to_py_err) },
            |py, ()| Ok(py.None()),
        )
    }

    fn __aenter__(slf: Py<Self>, py: Python<'_>) -> PyResult<PyObject> {
        spawn_awaitable(py, async { Ok(()) }, move |py, ()| {
            Ok(slf.into_any().clone_ref(py))
        })
    }

    #[pyo3(signature = (*_args))]
    fn __aexit__(
        &self,
        py: Python<'_>,
        _args: &Bound<'_, pyo3::types::PyTuple>,
    ) -> PyResult<PyObject> {
        let inner = self.inner.clone();
        spawn_awaitable(
            py,
            async move { inner.shutdown().await.map_err(to_py_err) },
            |py, ()| Ok(false.into_py(py)),
        )
    }
}

/// An async iterator of one guild's acknowledged events (`Reprise.subscribe`).
#[pyclass(module = "reprise._reprise")]
pub(crate) struct Subscription {
    inner: Arc<tokio::sync::Mutex<reprise::Subscription>>,
}

#[pymethods]
impl Subscription {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next `{"seq", "event"}`; `StopAsyncIteration` once the handle is closed; a
    /// `reprise.Error` when the subscriber fell behind (events were skipped).
    fn __anext__(&self, py: Python<'_>) -> PyResult<PyObject> {
        let inner = Arc::clone(&self.inner);
        spawn_awaitable(
            py,
            async move {
                match inner.lock().await.recv().await {
                    Ok(logged) => Ok(logged),
                    Err(reprise::SubscriptionError::Closed) => {
                        Err(PyStopAsyncIteration::new_err(()))
                    }
                    Err(e) => Err(Error::new_err(e.to_string())),
                }
            },
            |py, logged| {
                let dict = PyDict::new_bound(py);
                dict.set_item("seq", logged.seq)?;
                let event = serde_json::to_value(&logged.event)
                    .map_err(|e| PyValueError::new_err(e.to_string()))?;
                dict.set_item("event", from_json_value(py, &event)?)?;
                Ok(dict.into_any().unbind())
            },
        )
    }
}
