//! Tokens of an external identity provider (Better Auth's JWT plugin),
//! accepted beside our own, against a stand-in provider with keys made
//! per test (see `provider`).

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Response, StatusCode};
use sea_orm::{ConnectionTrait, Statement, Value as SqlValue};
use serde_json::{Value, json};
use todo_persistence::{DatabaseSettings, connect};

use crate::helpers::{PASSWORD, TEST_SECRET, TestApp, TestUser, assert_error, spawn_app};
use crate::provider::{Provider, SigningKey, better_auth_id, spawn_app_trusting, unsigned_token};

/// Asserts a 401 `invalid_token` with the `WWW-Authenticate` challenge.
async fn assert_invalid_token(response: Response, case: &str) {
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "{case}: status"
    );
    assert_eq!(
        response.headers().get("www-authenticate").unwrap(),
        "Bearer",
        "{case}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid_token", "{case}: {body}");
    assert_eq!(
        body["detail"], "Invalid authentication credentials",
        "{case}"
    );
}

async fn me(app: &TestApp, token: &str) -> Value {
    let response = app.me(token).await;
    assert_eq!(response.status(), StatusCode::OK, "GET /api/auth/me");
    response.json().await.unwrap()
}

/// `SELECT COUNT(*)` on the app's own database.
async fn count(app: &TestApp, sql: &str, values: Vec<SqlValue>) -> i64 {
    let db = connect(&DatabaseSettings {
        url: app.database.url().to_owned(),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(10),
    })
    .await
    .unwrap();
    let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, values);
    let row = db.query_one_raw(statement).await.unwrap().unwrap();
    let count = row.try_get_by_index::<i64>(0).unwrap();
    db.close().await.unwrap();
    count
}

/// Retries `request` until it answers `status`, for at most `within`.
async fn eventually<F, Fut>(within: Duration, status: StatusCode, mut request: F) -> Response
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let deadline = Instant::now() + within;
    loop {
        let response = request().await;
        if response.status() == status || Instant::now() >= deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_token_minted_as_better_auth_mints_it_is_accepted_end_to_end() {
    let key = SigningKey::ed25519();
    let provider = Provider::start(&[&key]).await;
    let app = spawn_app_trusting(&provider, &[]).await;
    let ada = provider.user();
    let token = key.sign(&ada.claims());

    // The header is exactly Better Auth's: alg and kid, nothing else.
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!((header.alg, header.typ), (Algorithm::EdDSA, None));
    assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));

    let profile = me(&app, &token).await;
    let id = profile["id"].as_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    assert_eq!(profile["email"], ada.email.as_str());
    assert_eq!(profile["last_signin_at"], Value::Null);
    assert_ne!(id, ada.id, "our own id, not the provider's");

    let task = app.created_task(&token, "from the web front end").await;
    let list: Vec<Value> = app.list_tasks(&token).await.json().await.unwrap();
    assert_eq!(list, vec![task.clone()]);
    let again = app.get_task(&token, task["id"].as_str().unwrap()).await;
    assert_eq!(again.status(), StatusCode::OK);

    // A later token of the same person is the same user.
    let later = key.sign(&ada.claims());
    assert_eq!(me(&app, &later).await["id"], id.as_str());
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM user_identities", vec![]).await,
        1
    );
}

#[tokio::test]
async fn es256_keys_published_without_alg_are_accepted() {
    let key = SigningKey::es256();
    assert!(key.jwk.get("alg").is_none());
    let provider = Provider::start(&[&key]).await;
    let app = spawn_app_trusting(&provider, &[]).await;
    let grace = provider.user();

    let profile = me(&app, &key.sign(&grace.claims())).await;
    assert_eq!(profile["email"], grace.email.as_str());
}

#[tokio::test]
async fn rsa_keys_verify_only_the_algorithm_they_declare() {
    let rs256 = SigningKey::rsa(Algorithm::RS256);
    let ps256 = SigningKey::rsa(Algorithm::PS256);
    let provider = Provider::start(&[&rs256, &ps256]).await;
    let app = spawn_app_trusting(&provider, &[]).await;
    let user = provider.user();

    let first = me(&app, &rs256.sign(&user.claims())).await;
    let second = me(&app, &ps256.sign(&user.claims())).await;
    assert_eq!(first["id"], second["id"]);

    // Same key, same kid, the other RSA algorithm in the header.
    let mut as_ps256 = rs256.header();
    as_ps256.alg = Algorithm::PS256;
    let mut as_rs256 = ps256.header();
    as_rs256.alg = Algorithm::RS256;
    assert_invalid_token(
        app.me(&rs256.sign_with_header(as_ps256, &user.claims()))
            .await,
        "PS256 under an RS256 key",
    )
    .await;
    assert_invalid_token(
        app.me(&ps256.sign_with_header(as_rs256, &user.claims()))
            .await,
        "RS256 under a PS256 key",
    )
    .await;
}

#[tokio::test]
async fn our_own_tokens_keep_working_beside_external_ones() {
    let key = SigningKey::ed25519();
    let provider = Provider::start(&[&key]).await;
    let app = spawn_app_trusting(&provider, &[]).await;
    let local = TestUser::signed_up(&app).await;
    let external = provider.user();

    assert_eq!(me(&app, &local.token).await["id"], local.id.as_str());
    let external_profile = me(&app, &key.sign(&external.claims())).await;
    assert_ne!(external_profile["id"], local.id.as_str());
    let signed_in = app.sign_in(&local.email, PASSWORD).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
}

#[tokio::test]
async fn tokens_that_fail_any_check_are_401_invalid_token() {
    let key = SigningKey::ed25519();
    let unpublished = SigningKey::ed25519();
    let provider = Provider::start(&[&key]).await;
    let app = spawn_app_trusting(&provider, &[]).await;
    let user = provider.user();
    let valid = user.claims();
    let with = |changes: Value| {
        let mut claims = valid.clone();
        for (name, value) in changes.as_object().unwrap() {
            claims[name] = value.clone();
        }
        claims
    };
    let without = |name: &str| {
        let mut claims = valid.clone();
        claims.as_object_mut().unwrap().remove(name);
        claims
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    // Signed HS256 with our real secret, claiming the provider: the
    // provider's tokens are checked against its keys only.
    let mut hs256_header = Header::new(Algorithm::HS256);
    hs256_header.kid = Some(key.kid.clone());
    let hs256 = jsonwebtoken::encode(
        &hs256_header,
        &valid,
        &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap();
    // An unpublished key's signature under a published key id.
    let mut forged_header = unpublished.header();
    forged_header.kid = Some(key.kid.clone());
    // The published EdDSA key's id, but the header claims ES256.
    let es256 = SigningKey::es256();
    let mut confused_header = es256.header();
    confused_header.kid = Some(key.kid.clone());

    let cases: Vec<(&str, String)> = vec![
        (
            "wrong aud",
            key.sign(&with(json!({"aud": "https://elsewhere.example.io"}))),
        ),
        ("aud missing", key.sign(&without("aud"))),
        (
            "wrong iss",
            key.sign(&with(json!({"iss": "https://impostor.example.io"}))),
        ),
        (
            "iss of our own tokens",
            key.sign(&with(json!({"iss": "todo-api"}))),
        ),
        (
            "expired",
            key.sign(&with(json!({"iat": now - 1000, "exp": now - 1}))),
        ),
        ("exp missing", key.sign(&without("exp"))),
        ("not yet valid", key.sign(&with(json!({"nbf": now + 600})))),
        ("sub missing", key.sign(&without("sub"))),
        ("sub empty", key.sign(&with(json!({"sub": ""})))),
        ("email missing", key.sign(&without("email"))),
        (
            "email implausible",
            key.sign(&with(json!({"email": "not-an-address"}))),
        ),
        ("unknown kid", unpublished.sign(&valid)),
        ("kid missing", {
            let mut header = key.header();
            header.kid = None;
            key.sign_with_header(header, &valid)
        }),
        (
            "bad signature",
            unpublished.sign_with_header(forged_header, &valid),
        ),
        (
            "alg confusion",
            es256.sign_with_header(confused_header, &valid),
        ),
        ("HS256 with the provider's iss", hs256),
        (
            "alg none with the provider's iss",
            unsigned_token(&key.kid, &valid),
        ),
        (
            "alg none with our iss",
            unsigned_token(&key.kid, &with(json!({"iss": "todo-api"}))),
        ),
        ("tampered payload", {
            let token = key.sign(&valid);
            let mut parts: Vec<&str> = token.split('.').collect();
            let other = key.sign(&with(json!({"sub": better_auth_id()})));
            let other_payload = other.split('.').nth(1).unwrap().to_owned();
            parts[1] = &other_payload;
            parts.join(".")
        }),
    ];
    for (case, token) in cases {
        assert_invalid_token(app.me(&token).await, case).await;
    }

    // An audience list is fine when it holds the configured audience.
    let listed = key.sign(&with(
        json!({"aud": ["https://other.example.io", provider.base_url]}),
    ));
    assert_eq!(app.me(&listed).await.status(), StatusCode::OK);
    // None of the refused tokens created a user.
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users", vec![]).await, 1);
}

#[tokio::test]
async fn without_the_external_settings_the_providers_tokens_are_refused() {
    let key = SigningKey::ed25519();
    let provider = Provider::start(&[&key]).await;
    let app = spawn_app().await;

    assert_invalid_token(
        app.me(&key.sign(&provider.user().claims())).await,
        "mode off",
    )
    .await;
    assert_eq!(provider.fetches(), 0);
}

#[tokio::test]
async fn a_rotated_key_is_refused_after_the_refresh_and_the_new_one_accepted_without_restart() {
    let old = SigningKey::ed25519();
    let new = SigningKey::ed25519();
    let mut provider = Provider::start(&[&old]).await;
    let app = spawn_app_trusting(&provider, &[]).await;
    let user = provider.user();
    let before = me(&app, &old.sign(&user.claims())).await;

    provider.publish(&[&new]);
    // The unknown kid makes todo-api fetch the JWKS again.
    let after = me(&app, &new.sign(&user.claims())).await;
    assert_eq!(after["id"], before["id"]);
    // The old key left the set with that fetch.
    assert_invalid_token(app.me(&old.sign(&user.claims())).await, "rotated out").await;

    // A key set with both (Better Auth's grace period) accepts both.
    provider.publish(&[&old, &new]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = SigningKey::ed25519();
    // Any unknown kid, after the minimum interval, fetches the set again.
    assert_invalid_token(app.me(&third.sign(&user.claims())).await, "never published").await;
    assert_eq!(
        me(&app, &old.sign(&user.claims())).await["id"],
        before["id"]
    );
    provider.stop().await;
}

#[tokio::test]
async fn a_flood_of_unknown_key_ids_fetches_the_jwks_at_most_once_per_interval() {
    let key = SigningKey::ed25519();
    let provider = Provider::start(&[&key]).await;
    // The default minimum interval: 30 seconds.
    let app = spawn_app_trusting(&provider, &[("AUTH_JWKS_MIN_REFRESH_SECONDS", "30")]).await;
    let user = provider.user();
    // Known key first: the start-up fetch is done once this answers.
    me(&app, &key.sign(&user.claims())).await;
    let fetched_at_start = provider.fetches();
    assert!(fetched_at_start <= 2, "{fetched_at_start}");

    let forged: Vec<String> = (0..40)
        .map(|_| SigningKey::ed25519().sign(&user.claims()))
        .collect();
    let responses = join_all(forged.iter().map(|token| app.me(token))).await;
    for response in responses {
        assert_invalid_token(response, "random kid").await;
    }
    assert!(
        provider.fetches() <= fetched_at_start + 1,
        "{} fetches for 40 unknown kids",
        provider.fetches() - fetched_at_start
    );
    // The known key still works throughout.
    me(&app, &key.sign(&user.claims())).await;
}

#[tokio::test]
async fn a_provider_that_is_down_gives_503_quickly_and_recovery_needs_no_restart() {
    let key = SigningKey::ed25519();
    let mut provider = Provider::start(&[&key]).await;
    provider.stop().await;
    let app = spawn_app_trusting(&provider, &[]).await;
    let user = provider.user();
    let token = key.sign(&user.claims());

    let started = Instant::now();
    let response = app.me(&token).await;
    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "auth_unavailable",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Task routes answer the same, not a 401 that would sign the user out.
    assert_error(
        app.list_tasks(&token).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "auth_unavailable",
    )
    .await;

    provider.restart().await;
    let response = eventually(Duration::from_secs(10), StatusCode::OK, || app.me(&token)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_hanging_provider_gives_503_within_the_timeout_and_cached_keys_keep_working() {
    let cached = SigningKey::ed25519();
    let added = SigningKey::ed25519();
    let provider = Provider::start(&[&cached]).await;
    let app = spawn_app_trusting(&provider, &[]).await;
    let user = provider.user();
    let first = me(&app, &cached.sign(&user.claims())).await;

    provider.hang(true);
    provider.publish(&[&cached, &added]);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // A cached key needs no fetch.
    assert_eq!(
        me(&app, &cached.sign(&user.claims())).await["id"],
        first["id"]
    );
    // A new key does, and the fetch gives up after AUTH_JWKS_TIMEOUT_SECONDS.
    let started = Instant::now();
    let response = app.me(&added.sign(&user.claims())).await;
    let waited = started.elapsed();
    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "auth_unavailable",
    )
    .await;
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "answered after {waited:?} with a 1 s timeout"
    );

    provider.hang(false);
    let token = added.sign(&user.claims());
    let response = eventually(Duration::from_secs(10), StatusCode::OK, || app.me(&token)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_redirected_jwks_request_is_not_followed() {
    let key = SigningKey::ed25519();
    let elsewhere = Provider::start(&[&key]).await;
    let provider = Provider::start(&[]).await;
    provider.redirect_to(&format!("{}/api/auth/jwks", elsewhere.base_url));
    let app = spawn_app_trusting(&provider, &[]).await;

    let response = app.me(&key.sign(&provider.user().claims())).await;

    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "auth_unavailable",
    )
    .await;
    assert!(provider.fetches() >= 1);
    assert_eq!(elsewhere.fetches(), 0, "the redirect was not followed");
}

#[tokio::test]
async fn an_external_user_never_sees_a_local_users_tasks_nor_the_other_way_round() {
    let key = SigningKey::ed25519();
    let provider = Provider::start(&[&key]).await;
    let app = spawn_app_trusting(&provider, &[]).await;
    let local = TestUser::signed_up(&app).await;
    // Same address at the provider: a different person as far as we know.
    let mut namesake = provider.user();
    namesake.email = local.email.clone();
    let external = key.sign(&namesake.claims());

    let locals_task = app.created_task(&local.token, "local secret").await;
    let externals_task = app.created_task(&external, "external secret").await;
    let local_id = locals_task["id"].as_str().unwrap();
    let external_id = externals_task["id"].as_str().unwrap();

    let externals_list: Vec<Value> = app.list_tasks(&external).await.json().await.unwrap();
    assert_eq!(externals_list, vec![externals_task.clone()]);
    let locals_list: Vec<Value> = app.list_tasks(&local.token).await.json().await.unwrap();
    assert_eq!(locals_list, vec![locals_task.clone()]);
    for response in [
        app.get_task(&external, local_id).await,
        app.delete_task(&external, local_id).await,
        app.flip_task(&external, local_id).await,
        app.get_task(&local.token, external_id).await,
        app.replace_task(&local.token, external_id, &json!({"title": "x"}))
            .await,
    ] {
        assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    assert_ne!(me(&app, &external).await["id"], local.id.as_str());
    // The shared address still signs in the password account only.
    let signed_in: Value = app
        .sign_in(&local.email, PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(signed_in["user"]["id"], local.id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_requests_of_one_external_user_create_one_user() {
    let key = SigningKey::ed25519();
    let provider = Provider::start(&[&key]).await;
    let app = spawn_app_trusting(&provider, &[]).await;
    let user = provider.user();
    let token = key.sign(&user.claims());

    let responses = join_all((0..12).map(|_| app.me(&token))).await;
    let mut ids = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
        let profile: Value = response.json().await.unwrap();
        ids.push(profile["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every request got the same user");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM users WHERE email = $1",
            vec![user.email.clone().into()]
        )
        .await,
        1
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM user_identities", vec![]).await,
        1
    );
}

#[tokio::test]
async fn an_email_changed_at_the_provider_is_stored() {
    let key = SigningKey::ed25519();
    let provider = Provider::start(&[&key]).await;
    let app = spawn_app_trusting(&provider, &[]).await;
    let mut user = provider.user();
    let before = me(&app, &key.sign(&user.claims())).await;

    user.email = format!("Renamed.{}", user.email);
    let after = me(&app, &key.sign(&user.claims())).await;

    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["email"], user.email.to_lowercase());
}

#[tokio::test]
async fn an_external_user_cannot_sign_in_with_a_password() {
    let key = SigningKey::ed25519();
    let provider = Provider::start(&[&key]).await;
    let app = spawn_app_trusting(&provider, &[]).await;
    let user = provider.user();
    me(&app, &key.sign(&user.claims())).await;

    for password in [PASSWORD, "", "anything at all"] {
        let body = assert_error(
            app.sign_in(&user.email, password).await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
        assert_eq!(body["detail"], "Invalid email or password");
    }
    // The address is free for a password account, a separate user.
    let signed_up = app.sign_up(&user.email, PASSWORD).await;
    assert_eq!(signed_up.status(), StatusCode::CREATED);
}
