//! The JSON form of a guild's state read back: [`GuildState::from_json`], the inverse of
//! [`GuildState::to_json`] (what `reprise state` prints), so a program can round-trip it.

use super::GuildState;
use crate::ids::GuildId;
use crate::session::State;

/// Why a JSON value is not a guild state ([`GuildState::from_json`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a guild state: {0}")]
pub struct StateJsonError(pub String);

impl GuildState {
    /// Reads a guild state from its JSON form. Two forms are accepted:
    ///
    /// - what [`GuildState::to_json`] and `reprise state` print: the state's fields with
    ///   `"guild"` and `"seq"` beside them;
    /// - `{"guild": G, "seq": N, "state": {...}}`, the state as an object of its own.
    ///
    /// The state's fields are checked as the state's own JSON form checks them (every field
    /// known, ranges), and the state against its invariants (entry ids, history within
    /// `history_max`, ...).
    ///
    /// # Errors
    /// [`StateJsonError`] naming what is missing or wrong.
    pub fn from_json(value: &serde_json::Value) -> Result<GuildState, StateJsonError> {
        let serde_json::Value::Object(map) = value else {
            return Err(StateJsonError("not a JSON object".into()));
        };
        let number = |field: &str| -> Result<u64, StateJsonError> {
            match map.get(field) {
                None => Err(StateJsonError(format!("`{field}` is missing"))),
                Some(v) => v.as_u64().ok_or_else(|| {
                    StateJsonError(format!("`{field}` is not an unsigned integer: {v}"))
                }),
            }
        };
        let guild = GuildId(number("guild")?);
        let seq = number("seq")?;
        let state_value = match map.get("state") {
            Some(nested) if map.len() == 3 => nested.clone(),
            Some(_) => {
                return Err(StateJsonError(
                    "`state` must be the only field beside `guild` and `seq`".into(),
                ))
            }
            None => {
                let mut fields = map.clone();
                fields.remove("guild");
                fields.remove("seq");
                serde_json::Value::Object(fields)
            }
        };
        let state: State = serde_json::from_value(state_value)
            .map_err(|e| StateJsonError(format!("the state: {e}")))?;
        state
            .check_invariants()
            .map_err(|e| StateJsonError(format!("the state: {}", e.0)))?;
        Ok(GuildState { guild, seq, state })
    }
}
