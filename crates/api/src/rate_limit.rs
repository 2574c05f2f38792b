//! A per-client-address rate limit on sign-up and sign-in: each costs an
//! Argon2 hash (tens of milliseconds of CPU), and sign-in is where
//! passwords get guessed.
//!
//! The limiter is `governor`'s keyed GCRA (a token bucket without a timer):
//! `AUTH_RATE_LIMIT_BURST` attempts at once, refilled at
//! `AUTH_RATE_LIMIT_PER_MINUTE`. Sign-up and sign-in share one bucket per
//! address. Beyond it: 429 `rate_limited` with `Retry-After`, produced by
//! the one error mapping, before the body is read.
//!
//! Which address: the TCP peer, unless `TRUST_PROXY_HEADERS` is set, in
//! which case the service must sit behind exactly one reverse proxy that
//! appends the peer it saw to `X-Forwarded-For` (or `Forwarded`). The
//! right-most entry is the one that proxy wrote; entries to its left came
//! from the client and could be anything, so they are never used. Without
//! such a proxy the header must not be trusted: any client could claim a
//! fresh address per request. IPv6 addresses are limited per /64, the
//! smallest block a single customer is usually given.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::HardeningSettings;
use crate::error::ApiError;

/// Forget addresses whose bucket is full again after this many checks, so
/// the map does not grow with every address ever seen.
const CHECKS_BETWEEN_CLEAN_UPS: u64 = 4096;

/// The shared limiter of the auth routes.
pub struct AuthRateLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    trust_proxy_headers: bool,
    checks: AtomicU64,
}

impl AuthRateLimiter {
    /// A limiter with the configured quota.
    #[must_use]
    pub fn new(settings: &HardeningSettings) -> Self {
        // Both are checked to be at least 1 when the settings are read.
        let per_minute =
            NonZeroU32::new(settings.auth_rate_limit_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.auth_rate_limit_burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            trust_proxy_headers: settings.trust_proxy_headers,
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one attempt from the bucket of the request's client.
    ///
    /// # Errors
    /// [`ApiError::RateLimited`] when the bucket is empty.
    pub fn check(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Result<(), ApiError> {
        let key = limit_key(self.client_address(peer, headers));
        if self.checks.fetch_add(1, Ordering::Relaxed) % CHECKS_BETWEEN_CLEAN_UPS
            == CHECKS_BETWEEN_CLEAN_UPS - 1
        {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Rounded up, and never 0: "retry now" would be a lie.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::RateLimited {
                retry_after_seconds: seconds.max(1),
            }
        })
    }

    fn client_address(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        let forwarded = if self.trust_proxy_headers {
            forwarded_for(headers)
        } else {
            None
        };
        // Without a peer (never the case over TCP) every such request
        // shares one bucket rather than escaping the limit.
        forwarded
            .or(peer.map(|peer| peer.ip()))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// The middleware for the auth routes. A limited request is answered
/// before its body is read.
pub async fn limit_auth_attempts(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let outcome = match request.app_data::<web::Data<AuthRateLimiter>>() {
        Some(limiter) => limiter.check(request.peer_addr(), request.headers()),
        // Not registered: a wiring mistake, and letting everything through
        // would hide it. `Unexpected` answers 500 and logs.
        None => Err(ApiError::Domain(todo_domain::DomainError::Unexpected(
            "the auth rate limiter is not registered as app data".into(),
        ))),
    };
    match outcome {
        Ok(()) => next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(error) => {
            let response = error.error_response();
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}

/// The address the trusted proxy appended: the last entry of
/// `X-Forwarded-For`, or else the `for=` of the last `Forwarded` element.
/// `None` when neither header holds an address (an obfuscated `for=_x` or
/// `unknown` included), so the peer is used.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    if let Some(last) = last_list_entry(headers, &header::X_FORWARDED_FOR) {
        return parse_address(&last);
    }
    let last = last_list_entry(headers, &header::FORWARDED)?;
    last.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            parse_address(value.trim().trim_matches('"'))
        } else {
            None
        }
    })
}

/// The last comma-separated entry over every line of a header.
fn last_list_entry(headers: &HeaderMap, name: &header::HeaderName) -> Option<String> {
    headers
        .get_all(name)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .rfind(|entry| !entry.is_empty())
        .map(str::to_owned)
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`.
fn parse_address(raw: &str) -> Option<IpAddr> {
    raw.parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| {
            raw.strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })
}

/// IPv4 as is (an IPv4-mapped IPv6 address included); IPv6 by its /64.
fn limit_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = v6.to_bits() & (u128::MAX << 64);
                IpAddr::V6(Ipv6Addr::from_bits(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn settings(burst: u32, trust: bool) -> HardeningSettings {
        HardeningSettings {
            shutdown_timeout: std::time::Duration::from_secs(1),
            client_request_timeout: std::time::Duration::from_secs(1),
            request_body_timeout: std::time::Duration::from_secs(1),
            keep_alive: None,
            auth_rate_limit_per_minute: 1,
            auth_rate_limit_burst: burst,
            password_hash_queue: 1,
            password_hash_wait: std::time::Duration::from_secs(1),
            trust_proxy_headers: trust,
        }
    }

    fn peer(address: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(address.parse().unwrap(), 40_000))
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    #[test]
    fn the_burst_passes_and_the_next_attempt_waits_about_a_minute() {
        let limiter = AuthRateLimiter::new(&settings(3, false));
        for _ in 0..3 {
            limiter.check(peer("10.0.0.1"), &HeaderMap::new()).unwrap();
        }
        match limiter.check(peer("10.0.0.1"), &HeaderMap::new()) {
            Err(ApiError::RateLimited {
                retry_after_seconds,
            }) => assert!((59..=60).contains(&retry_after_seconds)),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        limiter.check(peer("10.0.0.2"), &HeaderMap::new()).unwrap();
    }

    #[test]
    fn proxy_headers_are_ignored_unless_trusted() {
        let limiter = AuthRateLimiter::new(&settings(1, false));
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            limiter.client_address(peer("10.0.0.1"), &spoofed),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_trusted_proxy_header_gives_its_last_entry() {
        let limiter = AuthRateLimiter::new(&settings(1, true));
        let forwarded = headers(&[
            ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            limiter.client_address(peer("10.0.0.1"), &forwarded),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let rfc7239 = headers(&[(
            "forwarded",
            "for=1.1.1.1, for=\"[2001:db8::7]:4711\";proto=https",
        )]);
        assert_eq!(
            limiter.client_address(peer("10.0.0.1"), &rfc7239),
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
        let obfuscated = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(
            limiter.client_address(peer("10.0.0.1"), &obfuscated),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ipv6_addresses_share_a_bucket_per_64() {
        assert_eq!(
            limit_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            limit_key("2001:db8:1:2:bbbb::2".parse().unwrap())
        );
        assert_ne!(
            limit_key("2001:db8:1:2::1".parse().unwrap()),
            limit_key("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(
            limit_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
