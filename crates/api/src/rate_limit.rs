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
//! Which address: the TCP peer, or behind one of `TRUSTED_PROXIES` the
//! address those proxies recorded in `X-Forwarded-For` (see `proxies`).
//! IPv6 addresses are limited per /64, the smallest block a single
//! customer is usually given.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::HardeningSettings;
use crate::error::ApiError;
use crate::proxies::TrustedProxies;

/// Forget addresses whose bucket is full again after this many checks, so
/// the map does not grow with every address ever seen.
const CHECKS_BETWEEN_CLEAN_UPS: u64 = 4096;

/// The shared limiter of the auth routes.
pub struct AuthRateLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    trusted_proxies: TrustedProxies,
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
            trusted_proxies: settings.trusted_proxies.clone(),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one attempt from the bucket of the request's client.
    ///
    /// # Errors
    /// [`ApiError::RateLimited`] when the bucket is empty.
    pub fn check(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Result<(), ApiError> {
        let key = limit_key(self.trusted_proxies.client_address(peer, headers));
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

    fn settings(burst: u32) -> HardeningSettings {
        HardeningSettings {
            shutdown_timeout: std::time::Duration::from_secs(1),
            client_request_timeout: std::time::Duration::from_secs(1),
            request_body_timeout: std::time::Duration::from_secs(1),
            keep_alive: None,
            auth_rate_limit_per_minute: 1,
            auth_rate_limit_burst: burst,
            password_hash_queue: 1,
            password_hash_wait: std::time::Duration::from_secs(1),
            trusted_proxies: TrustedProxies::none(),
        }
    }

    fn forwarded_for(address: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            actix_web::http::header::X_FORWARDED_FOR,
            actix_web::http::header::HeaderValue::from_static(address),
        );
        headers
    }

    fn peer(address: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(address.parse().unwrap(), 40_000))
    }

    #[test]
    fn the_burst_passes_and_the_next_attempt_waits_about_a_minute() {
        let limiter = AuthRateLimiter::new(&settings(3));
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
    fn clients_behind_a_trusted_proxy_have_a_bucket_each() {
        let limiter = AuthRateLimiter::new(&HardeningSettings {
            trusted_proxies: TrustedProxies::parse("10.0.0.0/8").unwrap(),
            ..settings(1)
        });
        let proxy = peer("10.0.0.1");
        limiter.check(proxy, &forwarded_for("203.0.113.1")).unwrap();
        limiter.check(proxy, &forwarded_for("203.0.113.2")).unwrap();
        assert!(limiter.check(proxy, &forwarded_for("203.0.113.1")).is_err());
        // From an untrusted peer the header means nothing.
        limiter
            .check(peer("192.0.2.1"), &forwarded_for("203.0.113.3"))
            .unwrap();
        assert!(
            limiter
                .check(peer("192.0.2.1"), &forwarded_for("203.0.113.4"))
                .is_err()
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
