use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TEST_SECRET, TestUser, assert_error, spawn_app};

fn is_rfc3339_utc(value: &Value) -> bool {
    value.as_str().is_some_and(|text| {
        text.ends_with('Z')
            && time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .is_ok()
    })
}

#[tokio::test]
async fn sign_up_returns_a_token_and_the_user() {
    let app = spawn_app().await;
    let response = app.sign_up("  New.User@Example.IO ", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 86400);
    assert!(
        body["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    let user = &body["user"];
    assert_eq!(user["email"], "new.user@example.io");
    assert!(is_rfc3339_utc(&user["created_at"]));
    assert!(user["last_signin_at"].is_null());
    let id = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(
        user.as_object().unwrap().len(),
        4,
        "no hash or other field leaks: {user}"
    );
}

#[tokio::test]
async fn the_token_carries_the_contract_claims() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
    validation.set_issuer(&["todo-api"]);
    let data = jsonwebtoken::decode::<Value>(
        &user.token,
        &jsonwebtoken::DecodingKey::from_secret(TEST_SECRET.as_bytes()),
        &validation,
    )
    .unwrap();
    let claims = data.claims;
    assert_eq!(claims["sub"], user.id);
    assert_eq!(claims["email"], user.email);
    assert_eq!(claims["iss"], "todo-api");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 86400);
}

#[tokio::test]
async fn a_taken_email_is_a_conflict_even_in_another_case() {
    let app = spawn_app().await;
    assert_eq!(
        app.sign_up("taken@example.io", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let response = app.sign_up(" TAKEN@example.io", PASSWORD).await;
    assert_error(response, StatusCode::CONFLICT, "email_taken").await;
}

#[tokio::test]
async fn rule_violations_come_before_a_conflict() {
    let app = spawn_app().await;
    assert_eq!(
        app.sign_up("taken@example.io", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let response = app.sign_up("taken@example.io", "short").await;
    assert_error(response, StatusCode::BAD_REQUEST, "weak_password").await;
}

#[tokio::test]
async fn implausible_emails_are_rejected() {
    let app = spawn_app().await;
    for email in [
        "plain",
        "a@b",
        "@b.io",
        "a b@c.io",
        "",
        &format!("{}@b.io", "a".repeat(250)),
    ] {
        let response = app.sign_up(email, PASSWORD).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_email").await;
    }
}

#[tokio::test]
async fn passwords_outside_8_to_128_characters_are_weak() {
    let app = spawn_app().await;
    for password in ["1234567".to_owned(), "p".repeat(129)] {
        let response = app.sign_up("weak@example.io", &password).await;
        assert_error(response, StatusCode::BAD_REQUEST, "weak_password").await;
    }
    assert_eq!(
        app.sign_up("edge8@example.io", "12345678").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.sign_up("edge128@example.io", &"p".repeat(128))
            .await
            .status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_malformed_sign_up_body_is_a_validation_error() {
    let app = spawn_app().await;
    for body in [
        json!({"email": "a@b.io"}),
        json!({"email": 5, "password": PASSWORD}),
        json!([1]),
    ] {
        let response = app
            .client
            .post(app.url("/api/auth/signup"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        )
        .await;
    }
}

#[tokio::test]
async fn racing_sign_ups_for_one_email_give_exactly_one_account() {
    let app = spawn_app().await;
    let attempts = (0..10).map(|_| app.sign_up("race@example.io", PASSWORD));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|response| response.status())
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        9,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn sign_in_normalises_the_email_and_records_the_time() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let response = app
        .sign_in(&format!("  {} ", user.email.to_uppercase()), PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["id"], user.id);
    assert!(is_rfc3339_utc(&body["user"]["last_signin_at"]));
    let token = body["access_token"].as_str().unwrap();
    let me: Value = app.me(token).await.json().await.unwrap();
    assert_eq!(me["last_signin_at"], body["user"]["last_signin_at"]);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let response = app.sign_in(&user.email, "not the password").await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let wrong = assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let unknown = assert_error(
        app.sign_in("nobody@example.io", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["detail"], "Invalid email or password");
}

#[tokio::test]
async fn me_returns_the_callers_profile() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let response = app.me(&user.token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], user.id);
    assert_eq!(body["email"], user.email);
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn forge(claims: &Value, secret: &str, algorithm: Algorithm) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn assert_invalid_token(app: &crate::helpers::TestApp, token: &str) {
    let response = app.list_tasks(token).await;
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let body = assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(body["detail"], "Invalid authentication credentials");
}

#[tokio::test]
async fn a_missing_or_non_bearer_header_is_not_authenticated() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/api/tasks")).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_error(response, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let response = app
        .client
        .get(app.url("/api/auth/me"))
        .basic_auth("user", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

#[tokio::test]
async fn a_token_in_the_query_string_or_a_cookie_is_ignored() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let response = app
        .client
        .get(app.url(&format!("/api/tasks?access_token={}", user.token)))
        .header("cookie", format!("access_token={}", user.token))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_invalid() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let claims = |exp: u64, iss: &str| json!({"sub": user.id, "email": user.email, "iat": now(), "exp": exp, "iss": iss});
    let later = now() + 3600;

    assert_invalid_token(&app, "not-a-jwt").await;
    assert_invalid_token(&app, &format!("{}garbage", user.token)).await;
    assert_invalid_token(
        &app,
        &forge(
            &claims(later, "todo-api"),
            "another-secret-another-secret-123",
            Algorithm::HS256,
        ),
    )
    .await;
    assert_invalid_token(
        &app,
        &forge(
            &claims(now() - 10, "todo-api"),
            TEST_SECRET,
            Algorithm::HS256,
        ),
    )
    .await;
    assert_invalid_token(
        &app,
        &forge(
            &claims(later, "someone-else"),
            TEST_SECRET,
            Algorithm::HS256,
        ),
    )
    .await;
    assert_invalid_token(
        &app,
        &forge(&claims(later, "todo-api"), TEST_SECRET, Algorithm::HS512),
    )
    .await;
    let no_sub = json!({"email": user.email, "iat": now(), "exp": later, "iss": "todo-api"});
    assert_invalid_token(&app, &forge(&no_sub, TEST_SECRET, Algorithm::HS256)).await;
    let bad_sub =
        json!({"sub": "42", "email": user.email, "iat": now(), "exp": later, "iss": "todo-api"});
    assert_invalid_token(&app, &forge(&bad_sub, TEST_SECRET, Algorithm::HS256)).await;

    // alg "none": a header and claims with an empty signature.
    let header = base64_url(&json!({"alg": "none", "typ": "JWT"}));
    let payload = base64_url(&claims(later, "todo-api"));
    assert_invalid_token(&app, &format!("{header}.{payload}.")).await;
}

fn base64_url(value: &Value) -> String {
    // RFC 4648 base64url without padding, written out to keep the test free
    // of another dependency.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = serde_json::to_vec(value).unwrap();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn a_valid_token_for_a_user_that_does_not_exist_is_invalid() {
    let app = spawn_app().await;
    let claims = json!({
        "sub": uuid::Uuid::now_v7().to_string(), "email": "ghost@example.io",
        "iat": now(), "exp": now() + 3600, "iss": "todo-api"
    });
    assert_invalid_token(&app, &forge(&claims, TEST_SECRET, Algorithm::HS256)).await;
}

#[tokio::test]
async fn a_custom_issuer_and_lifetime_are_used() {
    let database = todo_persistence::testing::TestDatabase::preferred().await;
    let app = crate::helpers::spawn_app_with(
        database,
        &[("JWT_ISSUER", "tasks.example"), ("JWT_TTL_SECONDS", "120")],
    )
    .await;
    let response = app.sign_up("ttl@example.io", PASSWORD).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 120);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(app.me(token).await.status(), StatusCode::OK);
}

/// A key pair made for these tests only (`openssl genpkey -algorithm RSA`,
/// the private key as PKCS#1 DER): the service has never trusted it.
const FOREIGN_RSA_KEY: &[u8] = include_bytes!("fixtures/foreign_rsa_key.der");
const FOREIGN_RSA_PUBLIC: &str = include_str!("fixtures/foreign_rsa_public.pem");

/// A compact JWS with any header, signed by `sign` over `header.payload`.
fn hand_signed(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> String) -> String {
    let signing_input = format!("{}.{}", base64_url(header), base64_url(claims));
    let signature = sign(signing_input.as_bytes());
    format!("{signing_input}.{signature}")
}

#[tokio::test]
async fn algorithm_confusion_far_future_and_huge_tokens_are_invalid() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let claims = |iat: u64, exp: u64| json!({"sub": user.id, "email": user.email, "iat": iat, "exp": exp, "iss": "todo-api"});
    let valid = claims(now(), now() + 3600);
    let hmac_with = |key: &[u8]| {
        let key = EncodingKey::from_secret(key);
        move |input: &[u8]| jsonwebtoken::crypto::sign(input, &key, Algorithm::HS256).unwrap()
    };

    // HS/RS confusion, both ways round: an "RS256" token whose signature
    // is an HMAC with our own secret; an HS256 token whose HMAC key is an
    // RSA public key; and a genuine RS256 token from a key we never trusted.
    let rs256_header = json!({"alg": "RS256", "typ": "JWT"});
    assert_invalid_token(
        &app,
        &hand_signed(&rs256_header, &valid, hmac_with(TEST_SECRET.as_bytes())),
    )
    .await;
    let hs256_header = json!({"alg": "HS256", "typ": "JWT"});
    assert_invalid_token(
        &app,
        &hand_signed(
            &hs256_header,
            &valid,
            hmac_with(FOREIGN_RSA_PUBLIC.as_bytes()),
        ),
    )
    .await;
    let foreign = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &valid,
        &EncodingKey::from_rsa_der(FOREIGN_RSA_KEY),
    )
    .unwrap();
    assert_invalid_token(&app, &foreign).await;

    // Signed with OUR secret, but not a token we would issue: a lifetime
    // beyond JWT_TTL_SECONDS (exp in the year 2200), or an iat in the future.
    let year_2200 = 7_258_118_400;
    assert_invalid_token(
        &app,
        &forge(&claims(now(), year_2200), TEST_SECRET, Algorithm::HS256),
    )
    .await;
    assert_invalid_token(
        &app,
        &forge(
            &claims(now(), now() + 86_401),
            TEST_SECRET,
            Algorithm::HS256,
        ),
    )
    .await;
    assert_invalid_token(
        &app,
        &forge(
            &claims(now() + 3600, now() + 7200),
            TEST_SECRET,
            Algorithm::HS256,
        ),
    )
    .await;
    let no_iat = json!({"sub": user.id, "email": user.email, "exp": now() + 60, "iss": "todo-api"});
    assert_invalid_token(&app, &forge(&no_iat, TEST_SECRET, Algorithm::HS256)).await;
    // The boundary itself is accepted: exactly the configured lifetime.
    let full_lifetime = forge(
        &claims(now(), now() + 86_400),
        TEST_SECRET,
        Algorithm::HS256,
    );
    assert_eq!(app.me(&full_lifetime).await.status(), StatusCode::OK);

    // Huge tokens: 100 KB reaches the guard and is refused as a token;
    // 200 KB overflows the 128 KiB request-head limit first. Neither is 5xx.
    let padded = json!({"sub": user.id, "email": user.email, "iat": now(), "exp": now() + 60,
                        "iss": "todo-api", "pad": "p".repeat(75_000)});
    let huge = forge(
        &padded,
        "another-secret-another-secret-123",
        Algorithm::HS256,
    );
    assert!(huge.len() > 100_000);
    assert_invalid_token(&app, &huge).await;
    let giant = format!("{}.{}.{}", "a".repeat(100_000), "b".repeat(100_000), "c");
    // Its own client: the server closes the connection after a 431, and a
    // pooled connection must not be handed to the next request.
    let response = reqwest::Client::new()
        .get(app.url("/api/tasks"))
        .bearer_auth(&giant)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    // Still serving, and the valid token still works.
    assert_eq!(app.list_tasks(&user.token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_accepted_once_still_expires_on_time() {
    let database = todo_persistence::testing::TestDatabase::preferred().await;
    let app = crate::helpers::spawn_app_with(database, &[("JWT_TTL_SECONDS", "2")]).await;
    let body: Value = app
        .sign_up("brief@example.io", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    // Accepted, and so remembered by the guard's cache of verified tokens.
    assert_eq!(app.list_tasks(&token).await.status(), StatusCode::OK);
    assert_eq!(app.list_tasks(&token).await.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_invalid_token(&app, &token).await;
}
