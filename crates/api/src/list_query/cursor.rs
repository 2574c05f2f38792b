//! The opaque `cursor` of a paged list: where the next page starts, sealed
//! so that only this service can have written it, for this caller and this
//! query.
//!
//! A cursor is base64url (no padding) of a small payload and a tag:
//!
//! ```text
//! version (1) | sort field (1) | sort key | task id (16) | tag (16)
//! ```
//!
//! The sort key is 8 bytes of microseconds since 1970 (big-endian) for the
//! two times, a presence byte and those 8 bytes for `due_at`, one byte of
//! rank for `priority`, and a 2-byte length and the UTF-8 text for `title`.
//! The tag is HMAC-SHA256, cut to its first 16 bytes, over the payload, the
//! caller's id and the canonical form of the query's filters, sort and
//! order. Its key is derived from `JWT_SECRET`, so every instance that
//! accepts the caller's token accepts the caller's cursors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use time::OffsetDateTime;
use todo_domain::{
    FeedPosition, Priority, SortField, SortKey, TaskId, TaskPosition, TaskTitle, Timestamp, UserId,
};
use uuid::Uuid;

use crate::error::ApiError;

/// The payload layout this code writes and reads.
const VERSION: u8 = 1;
/// The bytes of the tag kept in a cursor: 128 bits, far beyond guessing.
const TAG_BYTES: usize = 16;
/// No cursor we write is longer (a 500-character title of 4-byte
/// characters is the longest key); longer input is refused unread.
const MAX_CURSOR_CHARS: usize = 4096;
/// The first byte of a changes-feed cursor: no list cursor starts with it,
/// so neither kind of cursor opens as the other.
const FEED_VERSION: u8 = 0x46;
/// What a feed cursor's tag covers besides its payload and its caller.
const FEED_BINDING: &[u8] = b"GET /api/tasks/changes";
/// Separates this key from every other use of `JWT_SECRET`.
const KEY_LABEL: &[u8] = b"todo-api list cursor key v1";

type HmacSha256 = Hmac<Sha256>;

/// The key that seals and opens cursors.
pub struct CursorKeys {
    /// HMAC already keyed: each tag starts from a clone of it, so the key's
    /// two blocks are hashed once, not for every cursor.
    keyed: HmacSha256,
}

impl std::fmt::Debug for CursorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorKeys").finish_non_exhaustive()
    }
}

impl CursorKeys {
    /// Derives the cursor key from the token secret: HMAC-SHA256 keyed with
    /// the secret over a fixed label, so a cursor's tag says nothing about
    /// the tokens' key and the other way round.
    #[must_use]
    pub fn derive(secret: &SecretString) -> Self {
        let mut mac = new_mac(secret.expose_secret().as_bytes());
        mac.update(KEY_LABEL);
        let key = mac.finalize().into_bytes();
        Self {
            keyed: new_mac(&key),
        }
    }

    fn tagged(&self, payload: &[u8], caller: UserId, binding: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(payload);
        mac.update(caller.as_uuid().as_bytes());
        mac.update(binding);
        mac
    }

    /// The cursor of the page that starts after `position`.
    #[must_use]
    pub fn seal(&self, position: &TaskPosition, caller: UserId, binding: &[u8]) -> String {
        let mut bytes = payload(position);
        let tag = self.tagged(&bytes, caller, binding).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position a cursor names, if this service sealed it for this
    /// caller and this query (`binding`), sorted by `field`.
    ///
    /// # Errors
    /// `InvalidCursor` for anything else.
    pub fn open(
        &self,
        raw: &str,
        caller: UserId,
        binding: &[u8],
        field: SortField,
    ) -> Result<TaskPosition, ApiError> {
        if raw.is_empty() || raw.len() > MAX_CURSOR_CHARS {
            return Err(ApiError::InvalidCursor);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| ApiError::InvalidCursor)?;
        let Some(split) = bytes.len().checked_sub(TAG_BYTES) else {
            return Err(ApiError::InvalidCursor);
        };
        let (body, tag) = bytes.split_at(split);
        self.tagged(body, caller, binding)
            .verify_truncated_left(tag)
            .map_err(|_| ApiError::InvalidCursor)?;
        // Only our own payloads carry a good tag; reading them is still
        // done with care, so a bug elsewhere cannot turn into a panic.
        read_payload(body, field).ok_or(ApiError::InvalidCursor)
    }
}

impl CursorKeys {
    /// The cursor of the changes feed at `position`, for `caller`:
    ///
    /// ```text
    /// 0x46 | tasks_after (8) | deletes_after (8) | tag (16)
    /// ```
    ///
    /// sealed with the same key and tag as list cursors, bound to the
    /// caller and to the feed.
    #[must_use]
    pub fn seal_feed(&self, position: FeedPosition, caller: UserId) -> String {
        let mut bytes = Vec::with_capacity(1 + 8 + 8 + TAG_BYTES);
        bytes.push(FEED_VERSION);
        bytes.extend_from_slice(&position.tasks_after.to_be_bytes());
        bytes.extend_from_slice(&position.deletes_after.to_be_bytes());
        let tag = self
            .tagged(&bytes, caller, FEED_BINDING)
            .finalize()
            .into_bytes();
        bytes.extend_from_slice(&tag[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The feed position a cursor names, if this service sealed it for
    /// this caller's feed.
    ///
    /// # Errors
    /// `InvalidCursor` for anything else.
    pub fn open_feed(&self, raw: &str, caller: UserId) -> Result<FeedPosition, ApiError> {
        if raw.is_empty() || raw.len() > MAX_CURSOR_CHARS {
            return Err(ApiError::InvalidCursor);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| ApiError::InvalidCursor)?;
        let Some(split) = bytes.len().checked_sub(TAG_BYTES) else {
            return Err(ApiError::InvalidCursor);
        };
        let (body, tag) = bytes.split_at(split);
        self.tagged(body, caller, FEED_BINDING)
            .verify_truncated_left(tag)
            .map_err(|_| ApiError::InvalidCursor)?;
        let mut reader = Reader(body);
        let read = (|| {
            if reader.byte()? != FEED_VERSION {
                return None;
            }
            let tasks_after = u64::from_be_bytes(reader.take(8)?.try_into().ok()?);
            let deletes_after = u64::from_be_bytes(reader.take(8)?.try_into().ok()?);
            reader.0.is_empty().then_some(FeedPosition {
                tasks_after,
                deletes_after,
            })
        })();
        read.ok_or(ApiError::InvalidCursor)
    }
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length (longer keys are hashed first), so
    // `new_from_slice` has no error to report for it.
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of every length")
}

fn field_code(field: SortField) -> u8 {
    match field {
        SortField::CreatedAt => 0,
        SortField::UpdatedAt => 1,
        SortField::DueAt => 2,
        SortField::Priority => 3,
        SortField::Title => 4,
    }
}

fn micros(stamp: Timestamp) -> [u8; 8] {
    // Instants of the years 1 to 9999 are within ±2^58 microseconds of
    // 1970, far inside an i64.
    let micros = stamp.as_datetime().unix_timestamp_nanos() / 1_000;
    i64::try_from(micros).unwrap_or(i64::MAX).to_be_bytes()
}

fn payload(position: &TaskPosition) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(48);
    bytes.push(VERSION);
    bytes.push(field_code(position.key.field()));
    match &position.key {
        SortKey::CreatedAt(stamp) | SortKey::UpdatedAt(stamp) => {
            bytes.extend_from_slice(&micros(*stamp));
        }
        SortKey::DueAt(None) => bytes.push(0),
        SortKey::DueAt(Some(stamp)) => {
            bytes.push(1);
            bytes.extend_from_slice(&micros(*stamp));
        }
        SortKey::Priority(priority) => {
            // Ranks run from 0 to 3.
            bytes.push(u8::try_from(priority.rank()).unwrap_or(u8::MAX));
        }
        SortKey::Title(title) => {
            let text = title.as_str().as_bytes();
            // A title is at most 500 characters, so at most 2000 bytes.
            let length = u16::try_from(text.len()).unwrap_or(u16::MAX);
            bytes.extend_from_slice(&length.to_be_bytes());
            bytes.extend_from_slice(&text[..usize::from(length)]);
        }
    }
    bytes.extend_from_slice(position.id.as_uuid().as_bytes());
    bytes
}

/// A cursor's payload, read from the front.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if self.0.len() < count {
            return None;
        }
        let (head, tail) = self.0.split_at(count);
        self.0 = tail;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|bytes| bytes[0])
    }

    fn timestamp(&mut self) -> Option<Timestamp> {
        let micros = i64::from_be_bytes(self.take(8)?.try_into().ok()?);
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .ok()
            .map(Timestamp::from_datetime)
    }
}

fn read_payload(body: &[u8], field: SortField) -> Option<TaskPosition> {
    let mut reader = Reader(body);
    if reader.byte()? != VERSION || reader.byte()? != field_code(field) {
        return None;
    }
    let key = match field {
        SortField::CreatedAt => SortKey::CreatedAt(reader.timestamp()?),
        SortField::UpdatedAt => SortKey::UpdatedAt(reader.timestamp()?),
        SortField::DueAt => match reader.byte()? {
            0 => SortKey::DueAt(None),
            1 => SortKey::DueAt(Some(reader.timestamp()?)),
            _ => return None,
        },
        SortField::Priority => SortKey::Priority(Priority::from_rank(i16::from(reader.byte()?))?),
        SortField::Title => {
            let length = u16::from_be_bytes(reader.take(2)?.try_into().ok()?);
            let text = std::str::from_utf8(reader.take(usize::from(length))?).ok()?;
            SortKey::Title(TaskTitle::parse(text).ok()?)
        }
    };
    let id = Uuid::from_slice(reader.take(16)?).ok()?;
    if !reader.0.is_empty() {
        return None;
    }
    Some(TaskPosition {
        key,
        id: TaskId::from_uuid(id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> CursorKeys {
        CursorKeys::derive(&SecretString::from(secret.to_owned()))
    }

    fn positions() -> Vec<TaskPosition> {
        let id = TaskId::generate();
        let at = Timestamp::now();
        [
            SortKey::CreatedAt(at),
            SortKey::UpdatedAt(at),
            SortKey::DueAt(None),
            SortKey::DueAt(Some(at)),
            SortKey::Priority(Priority::Medium),
            SortKey::Title(TaskTitle::parse("Ünïcode 🦀 title").unwrap()),
            SortKey::Title(TaskTitle::parse(&"🦀".repeat(500)).unwrap()),
        ]
        .into_iter()
        .map(|key| TaskPosition { key, id })
        .collect()
    }

    #[test]
    fn a_sealed_cursor_opens_to_the_same_position() {
        let keys = keys("a secret of at least thirty-two bytes");
        let caller = UserId::generate();
        for position in positions() {
            let cursor = keys.seal(&position, caller, b"query");
            assert!(cursor.len() <= MAX_CURSOR_CHARS);
            assert!(
                cursor
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            let opened = keys
                .open(&cursor, caller, b"query", position.key.field())
                .unwrap();
            assert_eq!(opened, position);
        }
    }

    #[test]
    fn another_caller_query_field_or_secret_cannot_open_it() {
        let keys_one = keys("a secret of at least thirty-two bytes");
        let caller = UserId::generate();
        let position = &positions()[0];
        let cursor = keys_one.seal(position, caller, b"query");
        let field = SortField::CreatedAt;
        let refused = [
            keys_one.open(&cursor, UserId::generate(), b"query", field),
            keys_one.open(&cursor, caller, b"other query", field),
            keys_one.open(&cursor, caller, b"query", SortField::UpdatedAt),
            keys("another secret of thirty-two bytes!!").open(&cursor, caller, b"query", field),
        ];
        for outcome in refused {
            assert!(matches!(outcome, Err(ApiError::InvalidCursor)));
        }
    }

    #[test]
    fn a_feed_cursor_opens_only_for_its_caller_and_only_as_a_feed_cursor() {
        let keys = keys("a secret of at least thirty-two bytes");
        let caller = UserId::generate();
        let position = FeedPosition {
            tasks_after: 7,
            deletes_after: 1 << 40,
        };
        let cursor = keys.seal_feed(position, caller);
        assert_eq!(keys.open_feed(&cursor, caller).unwrap(), position);
        assert!(matches!(
            keys.open_feed(&cursor, UserId::generate()),
            Err(ApiError::InvalidCursor)
        ));
        // A list cursor is no feed cursor, and the other way round.
        let list = keys.seal(&positions()[0], caller, FEED_BINDING);
        assert!(matches!(
            keys.open_feed(&list, caller),
            Err(ApiError::InvalidCursor)
        ));
        assert!(matches!(
            keys.open(&cursor, caller, FEED_BINDING, SortField::CreatedAt),
            Err(ApiError::InvalidCursor)
        ));
        for raw in ["", "!!!", "AAAA", &cursor[1..], "é"] {
            assert!(matches!(
                keys.open_feed(raw, caller),
                Err(ApiError::InvalidCursor)
            ));
        }
    }

    #[test]
    fn garbage_and_tampered_cursors_are_refused() {
        let keys = keys("a secret of at least thirty-two bytes");
        let caller = UserId::generate();
        let cursor = keys.seal(&positions()[3], caller, b"q");
        let mut tampered = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        tampered[3] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(tampered);
        let long = "A".repeat(MAX_CURSOR_CHARS + 1);
        for raw in ["", "!!!", "AAAA", &cursor[1..], &tampered, &long, "é"] {
            assert!(
                matches!(
                    keys.open(raw, caller, b"q", SortField::DueAt),
                    Err(ApiError::InvalidCursor)
                ),
                "{raw:?}"
            );
        }
    }
}
