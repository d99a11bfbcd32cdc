//! HTTP wiring: the attestation plane, the admin plane, health and metrics.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use genuine_protocol::wire::{AttestRequest, ChallengeRequest};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::admin::{Identity, NewRegistration, Role};
use crate::error::ApiError;
use crate::service::Service;

/// Largest request body, bytes.
pub const MAX_BODY: usize = 1024 * 1024;

type Shared = State<Arc<Service>>;

/// A JSON body, parsed once into a typed value; every failure is an [`ApiError`].
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|e| {
                if e.into_inner().is::<http_body_util::LengthLimitError>() {
                    ApiError::BodyTooLarge(MAX_BODY)
                } else {
                    ApiError::BodyNotJson("the request body could not be read".into())
                }
            })?;
        parse_json(&bytes).map(Body)
    }
}

/// Parses a JSON object body into `T`, once on the happy path. On failure the
/// code says which problem it is, whatever the parser met first: `body-not-json`
/// when the bytes are not JSON at all, `invalid-request` when they are JSON of
/// the wrong shape (arrays are never taken for objects).
fn parse_json<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let is_json = || serde_json::from_slice::<serde_json::Value>(bytes).map_err(|e| e.to_string());
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        is_json().map_err(ApiError::BodyNotJson)?;
        return Err(ApiError::InvalidRequest("expected a JSON object".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| match is_json() {
        Err(not_json) => ApiError::BodyNotJson(not_json),
        Ok(_) => ApiError::InvalidRequest(e.to_string()),
    })
}

/// Path parameters; a rejection is an [`ApiError`].
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::InvalidRequest(e.body_text()))
    }
}

/// Query parameters; a rejection is an [`ApiError`].
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::InvalidRequest(e.body_text()))
    }
}

/// The caller of an admin endpoint.
pub struct Admin(pub Identity);

impl FromRequestParts<Arc<Service>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Service>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or(ApiError::Unauthorized)?
            .trim();
        if token.is_empty() || token.len() > 256 {
            return Err(ApiError::Unauthorized);
        }
        state.authenticate(token).await.map(Admin)
    }
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

/// The whole router.
pub fn router(service: Arc<Service>) -> Router {
    let admin = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/accounts", post(create_account))
        .route("/accounts/{account}/tokens", post(create_token))
        .route("/accounts/{account}/apis", get(list_apis).post(add_api))
        .route("/accounts/{account}/apis/{domain}", delete(remove_api))
        .route("/accounts/{account}/apis/{domain}/rotate", post(rotate_api))
        .route(
            "/accounts/{account}/registrations",
            get(list_registrations).post(add_registration),
        )
        .route(
            "/accounts/{account}/registrations/{id}",
            delete(remove_registration),
        )
        .route("/accounts/{account}/devices", get(list_devices))
        .route(
            "/accounts/{account}/devices/{device_id}",
            put(set_device).delete(clear_device),
        )
        .route(
            "/accounts/{account}/apps/{app_id}/platform",
            get(get_app_platform),
        )
        .route(
            "/accounts/{account}/apps/{app_id}/platform/{kind}",
            put(set_app_platform).delete(remove_app_platform),
        )
        .route("/accounts/{account}/policy", get(get_policy))
        .route("/accounts/{account}/policy/{key}", put(set_policy))
        .route("/accounts/{account}/tokens/check", post(check_token))
        .route("/accounts/{account}/tokens/example", post(example_token))
        .route("/accounts/{account}/metrics", get(account_metrics));
    Router::new()
        .route("/v1/challenge", post(challenge))
        .route("/v1/attest", post(attest))
        .route("/v1/accounts/{account}/jwks.json", get(jwks))
        .route("/.well-known/jwks.json", get(default_jwks))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .nest("/admin/v1", admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(service)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("endpoint")
}

async fn method_not_allowed() -> Response {
    let body = genuine_protocol::wire::ErrorBody {
        error: "method-not-allowed".into(),
        message: "this endpoint does not take that method".into(),
    };
    json(StatusCode::METHOD_NOT_ALLOWED, &body)
}

/// The client's address: the peer, or behind a trusted proxy the address it
/// forwarded.
fn client_ip(s: &Service, peer: SocketAddr, headers: &axum::http::HeaderMap) -> std::net::IpAddr {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    s.trusted_proxies().client(peer.ip(), forwarded.into_iter())
}

async fn challenge(
    State(s): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    Body(req): Body<ChallengeRequest>,
) -> Result<Response, ApiError> {
    let client = client_ip(&s, peer, &headers);
    Ok(json(
        StatusCode::OK,
        &s.challenge(&req, Some(client)).await?,
    ))
}

async fn attest(
    State(s): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    Body(req): Body<AttestRequest>,
) -> Result<Response, ApiError> {
    let client = client_ip(&s, peer, &headers);
    Ok(json(StatusCode::OK, &s.attest(&req, Some(client)).await?))
}

async fn jwks(State(s): Shared, Path(account): Path<String>) -> Result<Response, ApiError> {
    let mut resp = json(StatusCode::OK, &s.jwks(&account).await?);
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("public, max-age=60"),
    );
    Ok(resp)
}

async fn default_jwks(s: Shared) -> Result<Response, ApiError> {
    jwks(s, Path("default".to_owned())).await
}

async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

async fn readyz(State(s): Shared) -> Result<Response, ApiError> {
    s.store()
        .ping()
        .await
        .inspect_err(|_| s.metrics().store_error())?;
    s.replay()
        .ping()
        .await
        .inspect_err(|_| s.metrics().shared_state_error())?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"status": "ready"}),
    ))
}

async fn prometheus(State(s): Shared) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        s.metrics().render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    json(StatusCode::OK, &crate::openapi::document())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    name: String,
}

async fn create_account(
    State(s): Shared,
    Admin(who): Admin,
    Body(req): Body<NewAccount>,
) -> Result<Response, ApiError> {
    // The operator is the admin of the bootstrap account `default`; it creates
    // accounts but gains no access to them.
    who.require("default", Role::Admin)?;
    let token = s.create_account(&req.name).await?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({"account": req.name, "admin_token": token}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    role: Role,
    #[serde(default)]
    label: Option<String>,
}

async fn create_token(
    State(s): Shared,
    Admin(who): Admin,
    Path(account): Path<String>,
    Body(req): Body<NewToken>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Admin)?;
    let (id, token) = s.create_admin_token(&account, req.role, req.label).await?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({"id": id, "role": req.role, "token": token}),
    ))
}

async fn list_apis(
    State(s): Shared,
    Admin(who): Admin,
    Path(account): Path<String>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Dev)?;
    Ok(json(StatusCode::OK, &s.list_apis(&account).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApi {
    domain: String,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    ttl: Option<i64>,
}

async fn add_api(
    State(s): Shared,
    Admin(who): Admin,
    Path(account): Path<String>,
    Body(req): Body<NewApi>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Admin)?;
    let info = s
        .add_api(
            &account,
            &req.domain,
            req.alg.as_deref().unwrap_or("ES256"),
            req.ttl.unwrap_or(300),
        )
        .await?;
    Ok(json(StatusCode::CREATED, &info))
}

async fn remove_api(
    State(s): Shared,
    Admin(who): Admin,
    Path((account, domain)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Admin)?;
    s.remove_api(&account, &domain).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn rotate_api(
    State(s): Shared,
    Admin(who): Admin,
    Path((account, domain)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Admin)?;
    Ok(json(
        StatusCode::OK,
        &s.rotate_api(&account, &domain).await?,
    ))
}

#[derive(Deserialize)]
struct AppFilter {
    app_id: Option<String>,
}

async fn list_registrations(
    State(s): Shared,
    Admin(who): Admin,
    Path(account): Path<String>,
    Query(f): Query<AppFilter>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Dev)?;
    Ok(json(
        StatusCode::OK,
        &s.list_registrations(&account, f.app_id.as_deref()).await?,
    ))
}

async fn add_registration(
    State(s): Shared,
    Admin(who): Admin,
    Path(account): Path<String>,
    Body(req): Body<NewRegistration>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Dev)?;
    Ok(json(
        StatusCode::CREATED,
        &s.add_registration(&account, req).await?,
    ))
}

async fn remove_registration(
    State(s): Shared,
    Admin(who): Admin,
    Path((account, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Dev)?;
    s.remove_registration(&account, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_devices(
    State(s): Shared,
    Admin(who): Admin,
    Path(account): Path<String>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Dev)?;
    Ok(json(StatusCode::OK, &s.list_devices(&account).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceChange {
    action: String,
    #[serde(default)]
    note: Option<String>,
}

async fn set_device(
    State(s): Shared,
    Admin(who): Admin,
    Path((account, device_id)): Path<(String, String)>,
    Body(req): Body<DeviceChange>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Dev)?;
    Ok(json(
        StatusCode::OK,
        &s.set_device(&account, &device_id, &req.action, req.note)
            .await?,
    ))
}

async fn clear_device(
    State(s): Shared,
    Admin(who): Admin,
    Path((account, device_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Dev)?;
    s.clear_device(&account, &device_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_app_platform(
    State(s): Shared,
    Admin(who): Admin,
    Path((account, app_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Dev)?;
    Ok(json(
        StatusCode::OK,
        &s.app_platform(&account, &app_id).await?,
    ))
}

async fn set_app_platform(
    State(s): Shared,
    Admin(who): Admin,
    Path((account, app_id, kind)): Path<(String, String, String)>,
    Body(body): Body<serde_json::Value>,
) -> Result<Response, ApiError> {
    // Settings decide which devices are trusted and hold Play's key.
    who.require(&account, Role::Admin)?;
    Ok(json(
        StatusCode::OK,
        &s.set_app_platform(&account, &app_id, &kind, body).await?,
    ))
}

async fn remove_app_platform(
    State(s): Shared,
    Admin(who): Admin,
    Path((account, app_id, kind)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Admin)?;
    s.remove_app_platform(&account, &app_id, &kind).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_policy(
    State(s): Shared,
    Admin(who): Admin,
    Path(account): Path<String>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Dev)?;
    Ok(json(StatusCode::OK, &s.policy(&account).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyValue {
    value: serde_json::Value,
}

async fn set_policy(
    State(s): Shared,
    Admin(who): Admin,
    Path((account, key)): Path<(String, String)>,
    Body(req): Body<PolicyValue>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Admin)?;
    let value = match &req.value {
        serde_json::Value::String(v) => v.clone(),
        v => v.to_string(),
    };
    Ok(json(
        StatusCode::OK,
        &s.set_policy(&account, &key, &value).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    token: String,
    #[serde(default)]
    api: Option<String>,
}

async fn check_token(
    State(s): Shared,
    Admin(who): Admin,
    Path(account): Path<String>,
    Body(req): Body<CheckRequest>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Dev)?;
    if req.token.len() > genuine_verify::MAX_TOKEN_LEN {
        return Err(ApiError::InvalidField {
            field: "token",
            message: "larger than 8 KiB".into(),
        });
    }
    Ok(json(
        StatusCode::OK,
        &s.check_token(&account, &req.token, req.api.as_deref())
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExampleRequest {
    api: String,
    #[serde(default)]
    invalid: bool,
    #[serde(default)]
    binding: Option<String>,
    #[serde(default)]
    ttl: Option<i64>,
}

async fn example_token(
    State(s): Shared,
    Admin(who): Admin,
    Path(account): Path<String>,
    Body(req): Body<ExampleRequest>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Admin)?;
    let token = s
        .example_token(
            &account,
            &req.api,
            req.invalid,
            req.binding.as_deref(),
            req.ttl,
        )
        .await?;
    Ok(json(StatusCode::OK, &serde_json::json!({"token": token})))
}

#[derive(Deserialize)]
struct Window {
    since: Option<i64>,
}

async fn account_metrics(
    State(s): Shared,
    Admin(who): Admin,
    Path(account): Path<String>,
    Query(w): Query<Window>,
) -> Result<Response, ApiError> {
    who.require(&account, Role::Dev)?;
    Ok(json(
        StatusCode::OK,
        &s.metrics_report(&account, w.since.unwrap_or(3600)).await?,
    ))
}
