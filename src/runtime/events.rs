//! [`Reprise::events`]: a guild's logged events as a stream. The writer reads the guild's
//! segments once (one command: [`Journal::events`](crate::Journal::events)); a thread of the
//! stream's own decodes them and hands them over in pages through a bounded channel, so
//! neither the writer nor the caller's runtime decodes (or faults mapped pages in) for it.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::mpsc;

use super::maintenance::WaitFor;
use super::Reprise;
use crate::error::{Error, Result};
use crate::ids::GuildId;
use crate::journal::{EventIter, LoggedEvent};

/// Events per page handed from the decoding thread to the stream.
const PAGE_EVENTS_MAX: usize = 256;
/// Pages decoded ahead of the reader.
const PAGES_AHEAD_MAX: usize = 4;

/// The events a guild's log held when [`Reprise::events`] was called, oldest first: a
/// [`Stream`] of `Result<LoggedEvent>` (each with its `seq`), also readable with
/// [`EventStream::next`]. Where the log is damaged it yields one [`Error::Corrupt`] and ends.
/// Dropping it stops the decoding thread.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Vec<Result<LoggedEvent>>>,
    page: std::vec::IntoIter<Result<LoggedEvent>>,
}

impl EventStream {
    /// The next event, `None` after the last.
    ///
    /// # Errors
    /// [`Error::Corrupt`] where the log is damaged (then the stream ends).
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped `next` loses no event.
    pub async fn next(&mut self) -> Option<Result<LoggedEvent>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for EventStream {
    type Item = Result<LoggedEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(item) = self.page.next() {
                return Poll::Ready(Some(item));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(page)) => self.page = page.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Decodes `iter` page by page into `tx` until it ends or the stream is dropped.
fn decode(iter: EventIter, tx: &mpsc::Sender<Vec<Result<LoggedEvent>>>) {
    let mut page = Vec::with_capacity(PAGE_EVENTS_MAX);
    for item in iter {
        page.push(item);
        if page.len() == PAGE_EVENTS_MAX {
            let full = std::mem::replace(&mut page, Vec::with_capacity(PAGE_EVENTS_MAX));
            if tx.blocking_send(full).is_err() {
                return;
            }
        }
    }
    if !page.is_empty() {
        let _ = tx.blocking_send(page);
    }
}

impl Reprise {
    /// Every event `guild`'s log holds now, oldest first, as a stream (see [`EventStream`];
    /// the same events as [`Journal::events`](crate::Journal::events); events before the
    /// oldest retained segment were dropped by compaction). Events appended after the call are
    /// not in it: [`Reprise::subscribe`] follows those.
    ///
    /// The writer reads the guild's segment files in one command (appends of other guilds
    /// wait for that read only); decoding runs on a thread of the stream's own.
    ///
    /// # Errors
    /// Recovery errors, [`Error::Io`] (thread), [`Error::Closed`].
    ///
    /// # Cancel safety
    /// Cancel safe (reads only).
    pub async fn events(&self, guild: GuildId) -> Result<EventStream> {
        let iter = self
            .work(WaitFor::Nothing, move |a| a.journal.events(guild))
            .await?;
        let (tx, rx) = mpsc::channel(PAGES_AHEAD_MAX);
        std::thread::Builder::new()
            .name("reprise-events".into())
            .spawn(move || decode(iter, &tx))
            .map_err(|e| {
                Error::io(
                    "spawn the event decoding thread for",
                    std::path::PathBuf::new(),
                    e,
                )
            })?;
        Ok(EventStream {
            rx,
            page: Vec::new().into_iter(),
        })
    }
}
