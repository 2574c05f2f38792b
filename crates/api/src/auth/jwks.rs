//! The external provider's public keys: fetched from its JWKS URL, cached,
//! and refreshed on a timer and when a token names a key id not in the
//! cache (at most once per `AUTH_JWKS_MIN_REFRESH_SECONDS`).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::ExternalAuthSettings;

/// A key set larger than this is refused: real ones hold a few keys of a
/// few hundred bytes each.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// RSA keys shorter than this are refused (NIST and RFC 7518 floor).
const MIN_RSA_MODULUS_BITS: usize = 2048;

/// A public key and the one algorithm it may verify.
pub struct VerificationKey {
    /// The algorithm the key declares, or the only one its type allows.
    pub algorithm: Algorithm,
    /// The key itself.
    pub key: DecodingKey,
}

/// Why no key could be found for a key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyLookupError {
    /// The provider answered and has no usable key with this id.
    #[error("no usable key has this id")]
    Unknown,
    /// The key is not cached and the provider could not be asked.
    #[error("the key set could not be fetched")]
    Unavailable,
}

/// Why a fetch failed. Only logged: callers learn `Unavailable`.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed")]
    Request(#[from] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("body is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("body is not a JWKS")]
    Malformed(#[from] serde_json::Error),
}

type KeyMap = HashMap<String, Arc<VerificationKey>>;

/// What the fetch lock guards: when the last on-demand fetch ran, and
/// whether the last fetch of any kind failed.
#[derive(Default)]
struct FetchState {
    last_on_demand: Option<Instant>,
    last_failed: bool,
}

/// The cached key set of one provider.
pub struct Jwks {
    client: reqwest::Client,
    url: Url,
    min_refresh: Duration,
    /// Replaced whole by each successful fetch, so a key the provider
    /// dropped is gone after the next fetch. A read never waits for a fetch.
    keys: RwLock<Arc<KeyMap>>,
    /// Held for the duration of a fetch, so concurrent misses cause one
    /// fetch; the waiters then look again. A fetch is bounded by the
    /// client's timeout, so neither is a wait.
    fetch: Mutex<FetchState>,
}

impl Jwks {
    /// An empty cache for the configured provider; nothing is fetched yet.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (its TLS backend failed).
    pub fn new(settings: &ExternalAuthSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.jwks_timeout)
            .connect_timeout(settings.jwks_timeout)
            // Fetches are minutes apart and run on whichever worker runtime
            // needed them; an idle pooled connection would be tied to the
            // runtime that opened it, so none is kept.
            .pool_max_idle_per_host(0)
            // The keys decide who may sign in: they come from the configured
            // URL only, never from wherever a redirect (perhaps from https
            // to http) points. A 3xx is a failed fetch, logged with its
            // status.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("todo-api/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            url: settings.jwks_url.clone(),
            min_refresh: settings.jwks_min_refresh,
            keys: RwLock::new(Arc::default()),
            fetch: Mutex::new(FetchState::default()),
        })
    }

    /// The key with this id: from the cache, or after a fetch when the id
    /// is unknown and the last on-demand fetch is at least the minimum
    /// interval old.
    ///
    /// # Errors
    /// `Unknown` when the provider's latest answer has no such key;
    /// `Unavailable` when it could not be asked (its last fetch failed).
    pub async fn key(&self, kid: &str) -> Result<Arc<VerificationKey>, KeyLookupError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let mut state = self.fetch.lock().await;
        // A fetch that finished while this request waited may have it.
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let due = state
            .last_on_demand
            .is_none_or(|at| at.elapsed() >= self.min_refresh);
        if due {
            state.last_on_demand = Some(Instant::now());
            self.fetch_into_cache(&mut state).await;
            if let Some(key) = self.cached(kid) {
                return Ok(key);
            }
        }
        if state.last_failed {
            Err(KeyLookupError::Unavailable)
        } else {
            Err(KeyLookupError::Unknown)
        }
    }

    /// Fetches the key set now (the timer's refresh). Does not count
    /// against the on-demand minimum interval.
    pub async fn refresh(&self) {
        let mut state = self.fetch.lock().await;
        self.fetch_into_cache(&mut state).await;
    }

    fn cached(&self, kid: &str) -> Option<Arc<VerificationKey>> {
        // Writers only swap an `Arc`, which cannot panic half-way, so a
        // poisoned lock still holds a whole key set.
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.get(kid).cloned()
    }

    async fn fetch_into_cache(&self, state: &mut FetchState) {
        match self.fetch_key_set().await {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), "JWKS fetched");
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                state.last_failed = false;
            }
            Err(error) => {
                // Cached keys stay in use: a provider outage must not sign
                // everybody out. Tokens with unknown ids get 503 meanwhile.
                tracing::warn!(url = %self.url, error = %error, "JWKS fetch failed");
                state.last_failed = true;
            }
        }
    }

    async fn fetch_key_set(&self) -> Result<KeyMap, FetchError> {
        let mut response = self
            .client
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(parse_key_set(&body)?)
    }
}

/// Refreshes `jwks` every `interval`, starting now, until the service drops
/// it (the task holds only a weak reference).
pub fn spawn_refresher(jwks: &Arc<Jwks>, interval: Duration) {
    let jwks: Weak<Jwks> = Arc::downgrade(jwks);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(jwks) = jwks.upgrade() else { break };
            jwks.refresh().await;
        }
    });
}

/// `{"keys": [...]}` with each key kept as raw JSON, so one key this crate
/// cannot read does not discard the others.
#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

/// The usable keys of a JWKS document, by key id. Keys that are unusable
/// (see [`verification_key`]) are skipped; of two keys with one id, the
/// first usable one counts.
///
/// # Errors
/// When the document is not a JSON object with a `keys` array.
fn parse_key_set(body: &[u8]) -> Result<KeyMap, serde_json::Error> {
    let raw: RawKeySet = serde_json::from_slice(body)?;
    let mut keys = KeyMap::new();
    for value in raw.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        match verification_key(&jwk) {
            Ok((kid, key)) => {
                keys.entry(kid).or_insert_with(|| Arc::new(key));
            }
            Err(reason) => tracing::debug!(reason, "JWKS key skipped"),
        }
    }
    Ok(keys)
}

/// A JWK as a key id and a verification key, if this service may use it:
/// a signing key with an id, of a type and size it supports, whose declared
/// algorithm (if any) is the one its type allows.
///
/// | key type | curve / size | algorithm |
/// |---|---|---|
/// | `OKP` | Ed25519 | EdDSA |
/// | `EC` | P-256 | ES256 |
/// | `RSA` | ≥ 2048 bits | RS256 (or PS256 when the key declares it) |
///
/// Symmetric (`oct`) keys are never used: a key published in a key set is
/// public, and an HMAC key anyone can read would let anyone sign.
fn verification_key(jwk: &Jwk) -> Result<(String, VerificationKey), &'static str> {
    let kid = jwk
        .common
        .key_id
        .clone()
        .filter(|kid| !kid.is_empty())
        .ok_or("no kid")?;
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return Err("not a signing key"),
    }
    if let Some(operations) = &jwk.common.key_operations
        && !operations.contains(&KeyOperations::Verify)
    {
        return Err("key_ops does not allow verify");
    }
    let declared = jwk.common.key_algorithm;
    let algorithm = match (&jwk.algorithm, declared) {
        (AlgorithmParameters::OctetKeyPair(params), None | Some(KeyAlgorithm::EdDSA))
            if params.curve == EllipticCurve::Ed25519 =>
        {
            Algorithm::EdDSA
        }
        (AlgorithmParameters::EllipticCurve(params), None | Some(KeyAlgorithm::ES256))
            if params.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::PS256)) => Algorithm::PS256,
        _ => return Err("unsupported key type, curve or algorithm"),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "undecodable key material")?;
    let sized = match (algorithm, key.kind()) {
        // jsonwebtoken reads exactly 32 bytes of an Ed25519 key (and would
        // slice out of bounds on fewer), so the length is checked here.
        (Algorithm::EdDSA, DecodingKeyKind::SecretOrDer(bytes)) => bytes.len() == 32,
        // 0x04 followed by two 32-byte coordinates.
        (Algorithm::ES256, DecodingKeyKind::SecretOrDer(bytes)) => bytes.len() == 65,
        (_, DecodingKeyKind::RsaModulusExponent { n, .. }) => {
            modulus_bits(n) >= MIN_RSA_MODULUS_BITS
        }
        _ => false,
    };
    if !sized {
        return Err("key of the wrong size");
    }
    Ok((kid, VerificationKey { algorithm, key }))
}

/// Significant bits of a big-endian unsigned integer.
fn modulus_bits(big_endian: &[u8]) -> usize {
    let significant = big_endian
        .iter()
        .position(|byte| *byte != 0)
        .map_or(&[][..], |first| &big_endian[first..]);
    match significant.first() {
        None => 0,
        Some(top) => significant.len() * 8 - top.leading_zeros() as usize,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// base64url without padding, as JWKs carry binary values.
    fn b64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn okp(kid: &str, x_len: usize) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&vec![7; x_len]), "kid": kid})
    }

    fn ec(kid: &str) -> Value {
        json!({"kty": "EC", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32]), "kid": kid})
    }

    fn rsa(kid: &str, bits: usize) -> Value {
        let mut n = vec![0xff_u8; bits / 8];
        n[0] = 0x80;
        json!({"kty": "RSA", "n": b64(&n), "e": "AQAB", "kid": kid})
    }

    fn parse(keys: Vec<Value>) -> KeyMap {
        let body = serde_json::to_vec(&json!({ "keys": keys })).unwrap();
        parse_key_set(&body).unwrap()
    }

    fn algorithm_of(keys: &KeyMap, kid: &str) -> Option<Algorithm> {
        keys.get(kid).map(|key| key.algorithm)
    }

    #[test]
    fn better_auths_default_key_is_an_eddsa_key() {
        let mut key = okp("k1", 32);
        key["alg"] = json!("EdDSA");
        assert_eq!(
            algorithm_of(&parse(vec![key]), "k1"),
            Some(Algorithm::EdDSA)
        );
    }

    #[test]
    fn a_key_without_alg_gets_the_one_its_type_allows() {
        let keys = parse(vec![okp("ed", 32), ec("ec"), rsa("rsa", 2048)]);
        assert_eq!(algorithm_of(&keys, "ed"), Some(Algorithm::EdDSA));
        assert_eq!(algorithm_of(&keys, "ec"), Some(Algorithm::ES256));
        assert_eq!(algorithm_of(&keys, "rsa"), Some(Algorithm::RS256));
    }

    #[test]
    fn an_rsa_key_declaring_ps256_is_used_for_ps256_only() {
        let mut key = rsa("ps", 2048);
        key["alg"] = json!("PS256");
        assert_eq!(
            algorithm_of(&parse(vec![key]), "ps"),
            Some(Algorithm::PS256)
        );
    }

    #[test]
    fn a_declared_algorithm_that_does_not_fit_the_key_type_drops_the_key() {
        let mut ed_as_es = okp("a", 32);
        ed_as_es["alg"] = json!("ES256");
        let mut ec_as_hs = ec("b");
        ec_as_hs["alg"] = json!("HS256");
        let mut rsa_as_rs512 = rsa("c", 2048);
        rsa_as_rs512["alg"] = json!("RS512");
        assert!(parse(vec![ed_as_es, ec_as_hs, rsa_as_rs512]).is_empty());
    }

    #[test]
    fn symmetric_keys_are_never_used() {
        let oct = json!({"kty": "oct", "k": b64(b"a shared secret of 32 bytes!!!!!"), "kid": "s", "alg": "HS256"});
        assert!(parse(vec![oct]).is_empty());
    }

    #[test]
    fn an_ed25519_key_of_the_wrong_length_is_dropped_not_a_panic() {
        assert!(parse(vec![okp("short", 31), okp("long", 33), okp("empty", 0)]).is_empty());
    }

    #[test]
    fn unsupported_curves_are_dropped() {
        let ed448 = json!({"kty": "OKP", "crv": "Ed448", "x": b64(&[7; 57]), "kid": "ed448"});
        let p384 = json!({"kty": "EC", "crv": "P-384", "x": b64(&[1; 48]), "y": b64(&[2; 48]), "kid": "p384"});
        let x25519 = json!({"kty": "OKP", "crv": "X25519", "x": b64(&[7; 32]), "kid": "x"});
        assert!(parse(vec![ed448, p384, x25519]).is_empty());
    }

    #[test]
    fn rsa_keys_under_2048_bits_are_dropped() {
        let keys = parse(vec![rsa("small", 1024), rsa("big", 2048)]);
        assert!(!keys.contains_key("small"));
        assert!(keys.contains_key("big"));
    }

    #[test]
    fn keys_without_kid_or_meant_for_encryption_are_dropped() {
        let mut no_kid = okp("", 32);
        no_kid.as_object_mut().unwrap().remove("kid");
        let empty_kid = okp("", 32);
        let mut encryption = okp("enc", 32);
        encryption["use"] = json!("enc");
        let mut sign_only = okp("sign-only", 32);
        sign_only["key_ops"] = json!(["sign"]);
        let mut verify = okp("verify", 32);
        verify["use"] = json!("sig");
        verify["key_ops"] = json!(["verify"]);
        let keys = parse(vec![no_kid, empty_kid, encryption, sign_only, verify]);
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["verify"]);
    }

    #[test]
    fn unreadable_keys_do_not_discard_the_readable_ones() {
        let keys = parse(vec![
            json!("not an object"),
            json!({"kty": "EC", "crv": "P-256", "kid": "no-coordinates"}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": "!!not base64!!", "kid": "bad"}),
            okp("good", 32),
        ]);
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["good"]);
    }

    #[test]
    fn of_two_keys_with_one_id_the_first_usable_one_counts() {
        let keys = parse(vec![okp("dup", 31), okp("dup", 32), ec("dup")]);
        assert_eq!(algorithm_of(&keys, "dup"), Some(Algorithm::EdDSA));
    }

    #[test]
    fn a_document_that_is_not_a_key_set_is_an_error() {
        for body in [&b"<html>oops</html>"[..], b"{}", b"{\"keys\": 3}", b""] {
            assert!(
                parse_key_set(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_empty_key_set_is_valid_and_empty() {
        assert!(parse(vec![]).is_empty());
    }

    #[test]
    fn modulus_bits_ignore_leading_zero_bytes_and_bits() {
        assert_eq!(modulus_bits(&[]), 0);
        assert_eq!(modulus_bits(&[0, 0]), 0);
        assert_eq!(modulus_bits(&[0, 1]), 1);
        assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x7f, 0xff]), 15);
    }
}
