//! Safe retries: a client names a request with an `Idempotency-Key`, and a
//! retry of the same request under the same key gets the first answer again
//! instead of doing the work twice.
//!
//! A key is *claimed* before the work starts, in a statement of its own, so
//! that a concurrent retry sees it at once and is told the first request is
//! still running. The answer is recorded in the same transaction as the
//! work, so a task can never exist without its recorded answer. A request
//! that fails gives its claim back: only a success is kept.

use std::sync::Arc;

use uuid::Uuid;

use crate::{Task, UserId};

/// How long a key is remembered after its first use.
pub const IDEMPOTENCY_KEY_TTL: time::Duration = time::Duration::hours(24);
/// How long a claim may stay unfinished before another request may take it
/// over: far longer than any request can run (its body, a connection and
/// its statements are each bounded by a few seconds), so only the claim of
/// a process that died mid-request is ever taken over.
pub const CLAIM_TIMEOUT: time::Duration = time::Duration::seconds(60);
/// The longest key, in bytes.
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;

/// A client's name for one request: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// A key that is empty, too long or holds anything but visible ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to 255 visible ASCII characters")]
pub struct IdempotencyKeyError;

impl IdempotencyKey {
    /// Checks the key's rules.
    ///
    /// # Errors
    /// [`IdempotencyKeyError`] when a rule fails.
    pub fn parse(raw: &[u8]) -> Result<Self, IdempotencyKeyError> {
        let valid = (1..=IDEMPOTENCY_KEY_MAX_LEN).contains(&raw.len())
            && raw.iter().all(u8::is_ascii_graphic);
        if !valid {
            return Err(IdempotencyKeyError);
        }
        // Visible ASCII is UTF-8.
        std::str::from_utf8(raw)
            .map(|key| Self(key.to_owned()))
            .map_err(|_| IdempotencyKeyError)
    }

    /// The key.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What makes two requests the same request (method, path and body as a
/// JSON value), reduced by the caller to a digest. Compared, never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFingerprint(Vec<u8>);

impl RequestFingerprint {
    /// Wraps a digest.
    #[must_use]
    pub fn new(digest: Vec<u8>) -> Self {
        Self(digest)
    }

    /// The digest.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A recorded answer, replayed as it was. Opaque to the domain: the HTTP
/// layer writes it and reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedResponse {
    /// The status code.
    pub status: u16,
    /// The headers to send again (`Location`, `ETag`), name and value.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// Turns the task a request produced into the answer to record.
pub trait ResponseRecorder: Send + Sync {
    /// The answer that `task` is sent with.
    fn record(&self, task: &Task) -> RecordedResponse;
}

/// A retry-safe request, as the HTTP layer hands it to a service.
#[derive(Clone)]
pub struct IdempotentRequest {
    /// The client's key.
    pub key: IdempotencyKey,
    /// What the request was.
    pub fingerprint: RequestFingerprint,
    /// How to record its answer.
    pub recorder: Arc<dyn ResponseRecorder>,
}

impl std::fmt::Debug for IdempotentRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotentRequest")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A key this request holds while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Whose key.
    pub owner: UserId,
    /// The key.
    pub key: IdempotencyKey,
    /// Tells this claim from a later one that took an abandoned claim over:
    /// only the holder of the token may record an answer or give it back.
    pub token: Uuid,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The key is this request's now.
    Claimed(Claim),
    /// The same request already succeeded: here is its answer.
    Replay(RecordedResponse),
    /// A request with this key is still running.
    InUse,
    /// The key was used for another request.
    Reused,
}

/// A claim and the way to record the answer, handed to a repository so it
/// records the answer in the transaction that does the work. If the claim
/// was taken over meanwhile, the repository does nothing and reports
/// `IdempotencyKeyInUse`.
#[derive(Clone)]
pub struct Receipt {
    /// The claim to complete.
    pub claim: Claim,
    /// Renders the answer from the task the work produced.
    pub recorder: Arc<dyn ResponseRecorder>,
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receipt")
            .field("claim", &self.claim)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_of_visible_ascii_is_accepted() {
        let key = IdempotencyKey::parse(b"create-task:7f3a~!").unwrap();
        assert_eq!(key.as_str(), "create-task:7f3a~!");
    }

    #[test]
    fn a_key_of_255_characters_is_accepted_and_256_refused() {
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        assert_eq!(
            IdempotencyKey::parse(&[b'k'; 256]),
            Err(IdempotencyKeyError)
        );
    }

    #[test]
    fn an_empty_key_or_one_with_spaces_controls_or_non_ascii_is_refused() {
        for raw in [&b""[..], b"a b", b"a\tb", b"caf\xc3\xa9", b"\x7f"] {
            assert_eq!(
                IdempotencyKey::parse(raw),
                Err(IdempotencyKeyError),
                "{raw:?}"
            );
        }
    }
}
