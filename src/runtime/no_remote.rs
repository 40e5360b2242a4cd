//! Without the `remote` feature: what stands in for `shipping.rs`. Nothing ships, so the
//! actor's shipping state is always `None`; the types exist so that the actor reads the same in
//! both builds, and none of them can have a value.

use super::actor::Actor;
use crate::error::{Error, Result};
use crate::ids::GuildId;

/// The object store a runtime ships to: none without the `remote` feature.
#[derive(Clone, Debug)]
pub(crate) enum RemoteOptions {}

/// The actor's side of shipping: never present without the `remote` feature.
pub(super) enum Shipping {}

/// A note from the shipping task: none without the `remote` feature.
pub(super) enum ShipNote {}

impl Actor {
    pub(super) fn ship_note(&mut self, note: ShipNote) {
        match note {}
    }

    /// Nothing to report durable to: no shipper.
    pub(super) fn ship_durable(&mut self, _sync: bool) {}

    /// No shipper tells of fences; the journal itself has no ownership records to read
    /// without the `remote` feature.
    #[allow(clippy::unnecessary_wraps)]
    pub(super) fn check_fenced(&mut self, _guild: GuildId) -> Result<()> {
        Ok(())
    }
}

/// The error of a `remote` append to a runtime that cannot ship.
pub(super) fn no_remote() -> Error {
    Error::Remote {
        op: "ship",
        key: String::new(),
        source: "this build of reprise has no `remote` feature: nothing can be shipped".into(),
    }
}
