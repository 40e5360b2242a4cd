//! What bots keep besides the queue: a guild's `meta` and a track's user data (issue 19).

use super::Rng;
use crate::session::TrackFields;

/// A guild `meta` as bots keep it: a text channel, a 24/7 flag, sometimes a DJ role and a
/// nested settings object.
pub(super) fn meta(rng: &mut Rng) -> crate::session::Meta {
    let mut meta = crate::session::Meta::new();
    meta.insert(
        "text_channel".to_owned(),
        (1_100_000_000_000_000_000u64 + rng.below(1 << 30))
            .to_string()
            .into(),
    );
    meta.insert("twenty_four_seven".to_owned(), rng.chance(300).into());
    if rng.chance(500) {
        meta.insert(
            "dj_role".to_owned(),
            serde_json::json!({"id": rng.next_u64(), "name": "DJ ♪", "strict": null}),
        );
    }
    meta
}

/// Who asked for a track (Lavalink's userData), its thumbnail, and for some sources an ISRC and
/// plugin fields, on about 40% of the tracks.
pub(super) fn track_data(rng: &mut Rng, identifier: &str, fields: &mut TrackFields) {
    // What bots keep on a track: who asked for it (Lavalink's userData), the thumbnail, and
    // for some sources an ISRC and plugin fields.
    if rng.chance(400) {
        fields.artwork_url = Some(format!("https://i.ytimg.com/vi/{identifier}/hqdefault.jpg"));
        fields.user_data = Some(serde_json::json!({
            "requester": (1_100_000_000_000_000_000u64 + rng.below(1 << 30)).to_string(),
        }));
        if rng.chance(200) {
            fields.isrc = Some(format!("GB{:010}", rng.below(10_000_000_000)));
            fields.plugin_info = serde_json::json!({"albumName": "Album", "previewUrl": null})
                .as_object()
                .cloned();
        }
    }
}
