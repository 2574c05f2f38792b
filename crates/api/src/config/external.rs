//! Settings of the external identity provider (Better Auth's JWT plugin, or
//! any issuer that publishes its public keys as a JWKS).

use std::time::Duration;

use reqwest::Url;
use todo_domain::ExternalIdentity;

use super::{ConfigError, positive_seconds};

/// The three variables that switch the mode on, together or not at all.
const REQUIRED: [&str; 3] = ["AUTH_JWKS_URL", "AUTH_ISSUER", "AUTH_AUDIENCE"];
const TOGETHER: &str = "AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE must be set together";

/// Where the provider's keys are and what its tokens must say.
#[derive(Debug, Clone)]
pub struct ExternalAuthSettings {
    /// The provider's JWKS (`<base>/api/auth/jwks` for Better Auth).
    pub jwks_url: Url,
    /// The exact `iss` of the provider's tokens; tokens claiming it are
    /// checked against the JWKS only.
    pub issuer: String,
    /// An `aud` the provider's tokens must carry.
    pub audience: String,
    /// Upper bound of one JWKS fetch, connection included.
    pub jwks_timeout: Duration,
    /// Least time between two fetches caused by unknown key ids, so a
    /// flood of made-up `kid`s cannot hammer the provider.
    pub jwks_min_refresh: Duration,
    /// How often the JWKS is fetched regardless, so keys the provider
    /// removed stop being trusted.
    pub jwks_refresh_interval: Duration,
}

/// The external mode's settings when its three variables are set, `None`
/// when none is.
///
/// # Errors
/// `Missing` when only some are set; `Invalid` for a URL that is not
/// http(s), an issuer equal to `jwt_issuer` (a token could then not be told
/// apart by its `iss`), or a bad number.
pub(super) fn from_lookup(
    get: &dyn Fn(&str) -> Option<String>,
    jwt_issuer: &str,
) -> Result<Option<ExternalAuthSettings>, ConfigError> {
    let values = REQUIRED.map(|name| {
        get(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    });
    let [jwks_url, issuer, audience] = match values {
        [None, None, None] => return Ok(None),
        [Some(url), Some(issuer), Some(audience)] => [url, issuer, audience],
        partial => {
            let missing = REQUIRED
                .iter()
                .zip(&partial)
                .find_map(|(name, value)| value.is_none().then_some(*name))
                .unwrap_or(REQUIRED[0]);
            return Err(ConfigError::Missing {
                name: missing,
                reason: TOGETHER,
            });
        }
    };

    let jwks_url = Url::parse(&jwks_url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
        .ok_or(ConfigError::Invalid {
            name: "AUTH_JWKS_URL",
            reason: "must be an http:// or https:// URL",
        })?;
    if ExternalIdentity::new(&issuer, "subject").is_err() {
        return Err(ConfigError::Invalid {
            name: "AUTH_ISSUER",
            reason: "must be at most 2048 characters without control characters",
        });
    }
    if issuer == jwt_issuer {
        return Err(ConfigError::Invalid {
            name: "AUTH_ISSUER",
            reason: "must differ from JWT_ISSUER, or tokens could not be told apart",
        });
    }

    let seconds = |name: &'static str, default: u64| positive_seconds(get, name, default);
    Ok(Some(ExternalAuthSettings {
        jwks_url,
        issuer,
        audience,
        jwks_timeout: seconds("AUTH_JWKS_TIMEOUT_SECONDS", 5)?,
        jwks_min_refresh: seconds("AUTH_JWKS_MIN_REFRESH_SECONDS", 30)?,
        jwks_refresh_interval: seconds("AUTH_JWKS_REFRESH_SECONDS", 300)?,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const COMPLETE: [(&str, &str); 3] = [
        ("AUTH_JWKS_URL", "https://auth.example.io/api/auth/jwks"),
        ("AUTH_ISSUER", "https://auth.example.io"),
        ("AUTH_AUDIENCE", "https://auth.example.io"),
    ];

    fn settings(vars: &[(&str, &str)]) -> Result<Option<ExternalAuthSettings>, ConfigError> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        from_lookup(&|name| vars.get(name).map(|v| (*v).to_owned()), "todo-api")
    }

    fn with(overrides: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut vars: HashMap<&str, &str> = COMPLETE.into_iter().collect();
        vars.extend(overrides.iter().copied());
        vars.into_iter().collect()
    }

    #[test]
    fn none_of_the_three_leaves_the_mode_off() {
        assert!(settings(&[]).unwrap().is_none());
    }

    #[test]
    fn all_three_turn_it_on_with_the_default_timings() {
        let external = settings(&COMPLETE).unwrap().unwrap();
        assert_eq!(
            external.jwks_url.as_str(),
            "https://auth.example.io/api/auth/jwks"
        );
        assert_eq!(external.issuer, "https://auth.example.io");
        assert_eq!(external.audience, "https://auth.example.io");
        assert_eq!(external.jwks_timeout, Duration::from_secs(5));
        assert_eq!(external.jwks_min_refresh, Duration::from_secs(30));
        assert_eq!(external.jwks_refresh_interval, Duration::from_secs(300));
    }

    #[test]
    fn each_partial_combination_refuses_to_start_naming_a_missing_variable() {
        // Bit i of `present` says whether COMPLETE[i] is set; 1 to 6 are
        // every combination but none and all.
        for present in 1..7_u8 {
            let vars: Vec<(&str, &str)> = COMPLETE
                .iter()
                .enumerate()
                .filter(|(index, _)| present & (1 << index) != 0)
                .map(|(_, pair)| *pair)
                .collect();
            let error = settings(&vars).unwrap_err();
            let (missing, _) = COMPLETE
                .iter()
                .enumerate()
                .find(|(index, _)| present & (1 << index) == 0)
                .map(|(_, pair)| *pair)
                .unwrap();
            assert!(
                error.to_string().starts_with(missing),
                "{present:03b}: {error}"
            );
        }
    }

    #[test]
    fn a_blank_variable_counts_as_unset() {
        let vars = [COMPLETE[0], COMPLETE[1], ("AUTH_AUDIENCE", "  ")];
        let error = settings(&vars).unwrap_err();
        assert!(error.to_string().starts_with("AUTH_AUDIENCE"), "{error}");
    }

    #[test]
    fn a_jwks_url_that_is_not_http_is_refused() {
        for url in [
            "ftp://auth.example.io/jwks",
            "not a url",
            "file:///etc/jwks",
        ] {
            let error = settings(&with(&[("AUTH_JWKS_URL", url)])).unwrap_err();
            assert!(
                error.to_string().starts_with("AUTH_JWKS_URL"),
                "{url}: {error}"
            );
        }
    }

    #[test]
    fn a_plain_http_jwks_url_is_accepted_for_local_development() {
        let vars = with(&[("AUTH_JWKS_URL", "http://localhost:3000/api/auth/jwks")]);
        assert!(settings(&vars).unwrap().is_some());
    }

    #[test]
    fn the_external_issuer_must_differ_from_ours() {
        let error = settings(&with(&[("AUTH_ISSUER", "todo-api")])).unwrap_err();
        assert!(error.to_string().contains("JWT_ISSUER"), "{error}");
    }

    #[test]
    fn timings_must_be_positive_whole_seconds() {
        for name in [
            "AUTH_JWKS_TIMEOUT_SECONDS",
            "AUTH_JWKS_MIN_REFRESH_SECONDS",
            "AUTH_JWKS_REFRESH_SECONDS",
        ] {
            for bad in ["0", "-1", "1.5", "soon"] {
                let error = settings(&with(&[(name, bad)])).unwrap_err();
                assert!(error.to_string().starts_with(name), "{name}={bad}: {error}");
            }
            let good = settings(&with(&[(name, "7")])).unwrap().unwrap();
            let value = match name {
                "AUTH_JWKS_TIMEOUT_SECONDS" => good.jwks_timeout,
                "AUTH_JWKS_MIN_REFRESH_SECONDS" => good.jwks_min_refresh,
                _ => good.jwks_refresh_interval,
            };
            assert_eq!(value, Duration::from_secs(7));
        }
    }
}
