//! Authentication (JWT bearer tokens for people, API keys for machines) and role checks.
//!
//! * Passwords: argon2id (PHC strings), verified with the parameters stored in the hash.
//! * Tokens: HS256 only. The validator is built for that one algorithm, so `alg: none`,
//!   RS*/ES* confusion and HS384/HS512 tokens are refused, as are expired tokens (no
//!   leeway), tokens of another issuer and tokens whose signature does not verify.
//! * API keys: `fedics_<prefix>_<secret>`: the prefix (8 hex digits) finds the row, the
//!   SHA-256 of the secret is compared in constant time; a revoked key is refused.

use std::net::SocketAddr;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fedics_store::{Role, Store};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

/// Issuer claim of our tokens.
const ISSUER: &str = "fedics";

/// Whether requests must authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every route but `/health`, `/ready`, `/metrics`, `/docs`, `/openapi.json` and
    /// `POST /api/auth/login` needs a token or an API key.
    Enabled,
    /// Every caller is treated as an admin. For loopback development only (`--no-auth`).
    Disabled,
}

/// Token signing and lifetime.
#[derive(Clone)]
pub struct AuthConfig {
    pub mode: AuthMode,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Lifetime of an issued token.
    pub token_ttl: Duration,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("mode", &self.mode)
            .field("secret", &"<redacted>")
            .field("token_ttl", &self.token_ttl)
            .finish()
    }
}

/// Shortest JWT secret accepted (bytes); HS256 wants at least its 256-bit output.
pub const MIN_SECRET_LEN: usize = 32;

impl AuthConfig {
    /// Authentication on, tokens signed with `secret` (at least [`MIN_SECRET_LEN`] bytes).
    pub fn enabled(secret: Vec<u8>) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the JWT secret has {} bytes; at least {MIN_SECRET_LEN} are needed",
                secret.len()
            ));
        }
        let (encoding, decoding) = keys(&secret)?;
        Ok(Self {
            mode: AuthMode::Enabled,
            encoding,
            decoding,
            token_ttl: Duration::from_secs(3600),
        })
    }

    /// Authentication off (every caller is an admin). Tokens are still signed, with a
    /// random key, so issuing one is well-defined.
    pub fn disabled() -> Result<Self, String> {
        let mut c = Self::enabled(random_bytes(MIN_SECRET_LEN))?;
        c.mode = AuthMode::Disabled;
        Ok(c)
    }

    /// Issues a token for `username` with `role`.
    pub fn issue_token(&self, username: &str, role: Role) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: username.to_string(),
            role,
            iat: now,
            exp: now + i64::try_from(self.token_ttl.as_secs()).unwrap_or(3600),
            iss: ISSUER.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("signing a token: {e}")))
    }

    /// The claims of a valid token, or why it is refused.
    pub fn verify_token(&self, token: &str) -> Result<Claims, ApiError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "sub", "iss"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                let why = match e.kind() {
                    K::ExpiredSignature => "token expired",
                    K::InvalidSignature => "token signature does not verify",
                    K::InvalidAlgorithm | K::InvalidAlgorithmName => {
                        "token algorithm not accepted (HS256 only)"
                    }
                    K::InvalidIssuer => "token issuer not accepted",
                    _ => "malformed token",
                };
                ApiError::Unauthorized(why.into())
            })
    }
}

/// The HS256 signing and verification keys of `secret`.
fn keys(secret: &[u8]) -> Result<(EncodingKey, DecodingKey), String> {
    let e = EncodingKey::from_secret(secret).map_err(|e| format!("JWT secret: {e}"))?;
    let d = DecodingKey::from_secret(secret).map_err(|e| format!("JWT secret: {e}"))?;
    Ok((e, d))
}

/// Claims of our tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// How a caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalKind {
    User,
    ApiKey,
    /// Authentication is disabled (loopback development).
    Unauthenticated,
}

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Principal {
    /// User name, or `apikey:<name>`.
    pub name: String,
    #[schema(value_type = String, example = "analyst")]
    pub role: Role,
    pub kind: PrincipalKind,
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password: {e}"))
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// `n` bytes from the operating system's CSPRNG (through `rand`'s thread RNG, a ChaCha
/// generator seeded and periodically reseeded from the OS).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    b
}

/// `n` random bytes (as [`random_bytes`]) in hex: passwords, secrets, ids.
pub fn random_hex(n: usize) -> String {
    hex::encode(random_bytes(n))
}

/// A new API key: (the key to hand out once, its prefix, the SHA-256 of its secret).
pub fn generate_api_key() -> (String, String, String) {
    let prefix = random_hex(4);
    let secret = random_hex(24);
    let key = format!("fedics_{prefix}_{secret}");
    (key, prefix, secret_hash(&secret))
}

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Splits `fedics_<prefix>_<secret>`.
fn parse_api_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("fedics_")?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 8 && !secret.is_empty()).then_some((prefix, secret))
}

/// Resolves an API key to its principal.
async fn api_key_principal(store: &Store, key: &str) -> Result<Principal, ApiError> {
    let bad = || ApiError::Unauthorized("invalid API key".into());
    let (prefix, secret) = parse_api_key(key).ok_or_else(bad)?;
    let row = store.api_key_by_prefix(prefix).await?.ok_or_else(bad)?;
    let presented = secret_hash(secret);
    if !bool::from(presented.as_bytes().ct_eq(row.secret_hash.as_bytes())) {
        return Err(bad());
    }
    if row.revoked_at.is_some() {
        return Err(ApiError::Unauthorized("API key revoked".into()));
    }
    Ok(Principal {
        name: format!("apikey:{}", row.name),
        role: row.role,
        kind: PrincipalKind::ApiKey,
    })
}

/// The principal named by a request's credentials: `Ok(None)` when it carries none,
/// `Err(401)` when they are invalid. `token` is a `?token=` query value (WebSocket
/// clients cannot set headers).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<Option<Principal>, ApiError> {
    let auth = state.auth();
    if auth.mode == AuthMode::Disabled {
        return Ok(Some(Principal {
            name: "anonymous".into(),
            role: Role::Admin,
            kind: PrincipalKind::Unauthenticated,
        }));
    }
    if let Some(key) = headers.get("x-api-key") {
        let key = key
            .to_str()
            .map_err(|_| ApiError::Unauthorized("invalid API key".into()))?;
        return api_key_principal(state.store(), key.trim()).await.map(Some);
    }
    let bearer = match headers.get(axum::http::header::AUTHORIZATION) {
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
            let (scheme, cred) = v.trim().split_once(' ').ok_or_else(|| {
                ApiError::Unauthorized("expected \"Authorization: Bearer <token>\"".into())
            })?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(ApiError::Unauthorized(
                    "expected \"Authorization: Bearer <token>\"".into(),
                ));
            }
            Some(cred.trim().to_string())
        }
        None => token.map(str::to_string),
    };
    let Some(bearer) = bearer else {
        return Ok(None);
    };
    if bearer.starts_with("fedics_") {
        return api_key_principal(state.store(), &bearer).await.map(Some);
    }
    let claims = auth.verify_token(&bearer)?;
    Ok(Some(Principal {
        name: claims.sub,
        role: claims.role,
        kind: PrincipalKind::User,
    }))
}

/// Client address of a request (from the connection; `None` for in-process calls).
pub fn client_ip(parts_ext: &axum::http::Extensions) -> Option<String> {
    parts_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip().to_string())
}

/// Middleware: authenticates the caller (a request with invalid credentials is answered
/// 401 here), applies the rate limit keyed by principal or client IP, and leaves the
/// principal in the request's extensions for [`Require`] and the audit log.
pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(req.extensions());
    let principal = if req.uri().path() == "/ws" {
        // The WebSocket handler authenticates itself (token in the query string).
        None
    } else {
        match authenticate(&state, req.headers(), None).await {
            Ok(p) => p,
            Err(e) => {
                if let Err(wait) = state
                    .inner
                    .limiter
                    .check(&format!("ip:{}", ip.as_deref().unwrap_or("local")))
                {
                    return ApiError::TooManyRequests {
                        retry_after_s: wait,
                    }
                    .into_response();
                }
                return e.into_response();
            }
        }
    };
    let key = match &principal {
        Some(p) if p.kind != PrincipalKind::Unauthenticated => format!("p:{}", p.name),
        _ => format!("ip:{}", ip.as_deref().unwrap_or("local")),
    };
    if let Err(wait) = state.inner.limiter.check(&key) {
        metrics::counter!("fedics_http_rate_limited_total").increment(1);
        return ApiError::TooManyRequests {
            retry_after_s: wait,
        }
        .into_response();
    }
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}

/// Extractor: the caller, who must hold at least role `R` (0 viewer, 1 analyst, 2 admin).
/// 401 without credentials, 403 with too small a role.
pub struct Require<const R: u8>(pub Principal);

/// Any authenticated caller.
pub type Viewer = Require<0>;
/// Analysts and admins.
pub type Analyst = Require<1>;
/// Admins.
pub type Admin = Require<2>;

fn role_of(level: u8) -> Role {
    match level {
        0 => Role::Viewer,
        1 => Role::Analyst,
        _ => Role::Admin,
    }
}

impl<S: Send + Sync, const R: u8> FromRequestParts<S> for Require<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let p = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "not authenticated: send \"Authorization: Bearer <token>\" or \"X-API-Key\""
                        .into(),
                )
            })?;
        let needed = role_of(R);
        if p.role < needed {
            return Err(ApiError::Forbidden(format!(
                "this action needs the {} role (you are {})",
                needed.as_str(),
                p.role.as_str()
            )));
        }
        Ok(Require(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig::enabled(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn tokens_roundtrip_and_refuse_tampering() {
        let c = config();
        let t = c.issue_token("ann", Role::Analyst).unwrap();
        let claims = c.verify_token(&t).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("ann", Role::Analyst));
        let other = AuthConfig::enabled(b"another secret another secret 123".to_vec()).unwrap();
        assert!(other.verify_token(&t).is_err());
        assert!(c.verify_token("a.b.c").is_err());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(AuthConfig::enabled(b"short".to_vec()).is_err());
    }

    #[test]
    fn api_keys_parse() {
        let (key, prefix, hash) = generate_api_key();
        let (p, s) = parse_api_key(&key).unwrap();
        assert_eq!(p, prefix);
        assert_eq!(secret_hash(s), hash);
        assert!(parse_api_key("fedics_short_x").is_none());
        assert!(parse_api_key("nope").is_none());
    }
}
