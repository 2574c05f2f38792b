//! A stand-in for a Better Auth server: it publishes a JWKS at
//! `/api/auth/jwks` the way Better Auth's JWT plugin does, and signs tokens
//! the way the plugin does (header `{alg, kid}` without `typ`; the user
//! object as payload plus `iat`, `exp` 15 minutes later, `iss` and `aud` set
//! to the base URL, `sub` the user id). Its keys are generated per test. It
//! can be stopped (connections refused), made to hang, and restarted on the
//! same port, and it counts the JWKS requests it receives.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use todo_persistence::testing::TestDatabase;

use crate::helpers::{TestApp, spawn_app_with};

/// What the JWKS endpoint does.
struct ProviderState {
    jwks: Mutex<Value>,
    redirect_to: Mutex<Option<String>>,
    hanging: AtomicBool,
    fetches: AtomicUsize,
}

/// A running stand-in provider.
pub struct Provider {
    /// `http://127.0.0.1:<port>`: Better Auth's base URL, and so the
    /// default issuer and audience of its tokens.
    pub base_url: String,
    address: SocketAddr,
    state: web::Data<ProviderState>,
    handle: Option<ServerHandle>,
}

async fn jwks(state: web::Data<ProviderState>) -> HttpResponse {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    if state.hanging.load(Ordering::SeqCst) {
        // Longer than any test; the client's timeout must end the wait.
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    if let Some(location) = state.redirect_to.lock().unwrap().clone() {
        return HttpResponse::Found()
            .insert_header(("Location", location))
            .finish();
    }
    let body = state.jwks.lock().unwrap().clone();
    HttpResponse::Ok().json(body)
}

fn serve(listener: std::net::TcpListener, state: web::Data<ProviderState>) -> ServerHandle {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/api/auth/jwks", web::get().to(jwks))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(0)
    .listen(listener)
    .expect("the provider listens")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    handle
}

impl Provider {
    /// A provider publishing `keys`.
    pub async fn start(keys: &[&SigningKey]) -> Provider {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let address = listener.local_addr().unwrap();
        let state = web::Data::new(ProviderState {
            jwks: Mutex::new(json!({"keys": []})),
            redirect_to: Mutex::new(None),
            hanging: AtomicBool::new(false),
            fetches: AtomicUsize::new(0),
        });
        let provider = Provider {
            base_url: format!("http://{address}"),
            address,
            handle: Some(serve(listener, state.clone())),
            state,
        };
        provider.publish(keys);
        provider
    }

    /// Replaces the published key set.
    pub fn publish(&self, keys: &[&SigningKey]) {
        let keys: Vec<Value> = keys.iter().map(|key| key.jwk.clone()).collect();
        self.publish_raw(json!({ "keys": keys }));
    }

    /// Publishes an arbitrary JWKS document.
    pub fn publish_raw(&self, document: Value) {
        *self.state.jwks.lock().unwrap() = document;
    }

    /// From now on, JWKS requests are answered `302 Found` to `location`.
    pub fn redirect_to(&self, location: &str) {
        *self.state.redirect_to.lock().unwrap() = Some(location.to_owned());
    }

    /// JWKS requests received so far.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// From now on, JWKS requests are accepted but never answered.
    pub fn hang(&self, hanging: bool) {
        self.state.hanging.store(hanging, Ordering::SeqCst);
    }

    /// Stops listening: connections to the port are refused.
    pub async fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.stop(false).await;
        }
    }

    /// Listens again on the same port, with the same keys.
    pub async fn restart(&mut self) {
        let listener = std::net::TcpListener::bind(self.address).expect("the old port");
        self.handle = Some(serve(listener, self.state.clone()));
    }

    /// The settings that point todo-api at this provider, with short
    /// timings so tests finish quickly.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AUTH_JWKS_URL", format!("{}/api/auth/jwks", self.base_url)),
            ("AUTH_ISSUER", self.base_url.clone()),
            ("AUTH_AUDIENCE", self.base_url.clone()),
            ("AUTH_JWKS_TIMEOUT_SECONDS", "1".to_owned()),
            ("AUTH_JWKS_MIN_REFRESH_SECONDS", "1".to_owned()),
        ]
    }

    /// A user of this provider with a fresh Better Auth style id.
    pub fn user(&self) -> ProviderUser {
        ProviderUser {
            id: better_auth_id(),
            email: format!("{}@example.io", better_auth_id().to_lowercase()),
            issuer: self.base_url.clone(),
        }
    }
}

/// Starts todo-api trusting `provider`, with `overrides` applied last.
pub async fn spawn_app_trusting(provider: &Provider, overrides: &[(&str, &str)]) -> TestApp {
    let mut vars = provider.settings();
    for (name, value) in overrides {
        vars.retain(|(existing, _)| existing != name);
        vars.push((name, (*value).to_owned()));
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_app_with(TestDatabase::preferred().await, &vars).await
}

/// 32 characters of `a-zA-Z0-9`: the shape of Better Auth's default ids,
/// for users and for keys alike.
pub fn better_auth_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    bytes
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]))
        .collect()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A person signed in at the provider.
pub struct ProviderUser {
    pub id: String,
    pub email: String,
    issuer: String,
}

impl ProviderUser {
    /// The claims Better Auth's plugin puts in a token by default: the user
    /// object, `iat`, `exp` 15 minutes on, `iss` and `aud` the base URL,
    /// and `sub` the user id.
    pub fn claims(&self) -> Value {
        let iat = now();
        json!({
            "id": self.id,
            "name": "Ada Lovelace",
            "email": self.email,
            "emailVerified": false,
            "image": null,
            "createdAt": "2026-03-01T08:00:00.000Z",
            "updatedAt": "2026-03-01T08:00:00.000Z",
            "iat": iat,
            "exp": iat + 15 * 60,
            "iss": self.issuer,
            "aud": self.issuer,
            "sub": self.id,
        })
    }
}

/// A private key of the provider and the JWK it publishes for it.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub jwk: Value,
    encoding: EncodingKey,
}

impl SigningKey {
    /// Ed25519, Better Auth's default, published as its JWKS endpoint
    /// publishes it: `alg`, `crv`, the public JWK, and `kid`.
    pub fn ed25519() -> SigningKey {
        let mut seed = [0_u8; 32];
        getrandom::fill(&mut seed).unwrap();
        let private = ed25519_dalek::SigningKey::from_bytes(&seed);
        let der = private.to_pkcs8_der().unwrap();
        let kid = better_auth_id();
        let x = URL_SAFE_NO_PAD.encode(private.verifying_key().to_bytes());
        SigningKey {
            jwk: json!({"alg": "EdDSA", "crv": "Ed25519", "x": x, "kty": "OKP", "kid": kid}),
            kid,
            algorithm: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
        }
    }

    /// ES256 (P-256), published without `alg` as older Better Auth
    /// versions did: the key type alone must decide the algorithm.
    pub fn es256() -> SigningKey {
        let private = loop {
            let mut scalar = [0_u8; 32];
            getrandom::fill(&mut scalar).unwrap();
            // Fails only for the rare values outside the curve's order.
            if let Ok(key) = p256::SecretKey::from_slice(&scalar) {
                break key;
            }
        };
        let der = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&private).unwrap();
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
            &private.public_key(),
            false,
        );
        let kid = better_auth_id();
        SigningKey {
            jwk: json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
                "kid": kid,
            }),
            kid,
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
        }
    }

    /// RSA (2048 bits), published with `alg` set to `declared` (`RS256` or
    /// `PS256`, the two RSA options of Better Auth).
    pub fn rsa(declared: Algorithm) -> SigningKey {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::traits::PublicKeyParts as _;
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let der = private.to_pkcs1_der().unwrap();
        let kid = better_auth_id();
        let alg = match declared {
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
            other => panic!("not an RSA option of Better Auth: {other:?}"),
        };
        SigningKey {
            jwk: json!({
                "alg": alg,
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
                "kid": kid,
            }),
            kid,
            algorithm: declared,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        }
    }

    /// A compact JWT over `claims`, with Better Auth's header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(self.header(), claims)
    }

    /// Better Auth's protected header: `alg` and `kid`, no `typ`.
    pub fn header(&self) -> Header {
        let mut header = Header::new(self.algorithm);
        header.typ = None;
        header.kid = Some(self.kid.clone());
        header
    }

    pub fn sign_with_header(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// A token with header `{"alg":"none"}` (and `kid`), the given claims and
/// an empty signature.
pub fn unsigned_token(kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "none", "kid": kid});
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}
