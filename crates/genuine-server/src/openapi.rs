//! The OpenAPI 3.1 document of the admin plane, served at `/admin/v1/openapi.json`.
//!
//! Written by hand next to the handlers in [`crate::http`]; the test suite
//! checks that every route it lists answers and that every admin route is listed.

use serde_json::{Value, json};

fn op(summary: &str, role: &str, body: Option<Value>, ok: (&str, Value)) -> Value {
    let mut o = json!({
        "summary": summary,
        "description": format!("Role: {role}."),
        "security": [{"bearer": []}],
        "responses": {
            ok.0: {"description": "success", "content": {"application/json": {"schema": ok.1}}},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
            "403": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"},
            "409": {"$ref": "#/components/responses/Error"},
            "503": {"$ref": "#/components/responses/Error"}
        }
    });
    if let Some(schema) = body {
        o["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema}}});
    }
    o
}

fn no_content(summary: &str, role: &str) -> Value {
    let mut o = op(summary, role, None, ("204", json!({})));
    o["responses"]["204"] = json!({"description": "done"});
    o
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

/// The document.
#[must_use]
pub fn document() -> Value {
    let acct = path_param("account");
    let string = json!({"type": "string"});
    let int = json!({"type": "integer"});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Genuine admin API", "version": "1", "description": "Admin plane of the Genuine attestation service. Bearer admin tokens; roles admin and dev. Errors are {error, message} with a stable error code."},
        "paths": {
            "/admin/v1/accounts": {"post": op("Create an account and its first admin token (operator: admin of the default account)", "admin of default",
                Some(json!({"type": "object", "required": ["name"], "properties": {"name": string}, "additionalProperties": false})),
                ("201", json!({"type": "object", "properties": {"account": string, "admin_token": string}})))},
            "/admin/v1/accounts/{account}/tokens": {"parameters": [acct], "post": op("Create an admin token", "admin",
                Some(json!({"type": "object", "required": ["role"], "properties": {"role": {"enum": ["admin", "dev"]}, "label": string}, "additionalProperties": false})),
                ("201", json!({"type": "object", "properties": {"id": string, "role": string, "token": string}})))},
            "/admin/v1/accounts/{account}/apis": {"parameters": [acct],
                "get": op("List API domains", "dev", None, ("200", json!({"type": "array", "items": r("Api")}))),
                "post": op("Add an API domain with a fresh key set; an HS256 secret is returned once", "admin",
                    Some(json!({"type": "object", "required": ["domain"], "properties": {"domain": string, "alg": {"enum": ["ES256", "EdDSA", "HS256"]}, "ttl": int}, "additionalProperties": false})),
                    ("201", r("Api")))},
            "/admin/v1/accounts/{account}/apis/{domain}": {"parameters": [acct, path_param("domain")],
                "delete": no_content("Remove an API domain and its keys", "admin")},
            "/admin/v1/accounts/{account}/apis/{domain}/rotate": {"parameters": [acct, path_param("domain")],
                "post": op("Rotate the signing key; the old key stays published until its last token expires", "admin", None, ("200", r("Api")))},
            "/admin/v1/accounts/{account}/registrations": {"parameters": [acct],
                "get": {
                    "parameters": [{"name": "app_id", "in": "query", "required": false, "schema": string}],
                    "summary": "List registrations", "security": [{"bearer": []}],
                    "responses": {"200": {"description": "success", "content": {"application/json": {"schema": {"type": "array", "items": r("Registration")}}}}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}}},
                "post": op("Register an app digest", "dev", Some(json!({"type": "object", "required": ["app_id", "digest"], "additionalProperties": false, "properties": {
                    "app_id": string, "digest": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}, "alg": {"enum": ["elf-exec-segments-sha256/v1"]},
                    "platform": string, "version": string, "expire_after_secs": int, "expires_at": int}})), ("201", r("Registration")))},
            "/admin/v1/accounts/{account}/registrations/{id}": {"parameters": [acct, path_param("id")],
                "delete": no_content("Remove a registration", "dev")},
            "/admin/v1/accounts/{account}/devices": {"parameters": [acct],
                "get": op("List device overrides", "dev", None, ("200", json!({"type": "array", "items": r("Device")})))},
            "/admin/v1/accounts/{account}/devices/{device_id}": {"parameters": [acct, path_param("device_id")],
                "put": op("Allow or block a device", "dev", Some(json!({"type": "object", "required": ["action"], "properties": {"action": {"enum": ["allow", "block"]}, "note": string}, "additionalProperties": false})), ("200", r("Device"))),
                "delete": no_content("Clear a device override", "dev")},
            "/admin/v1/accounts/{account}/apps/{app_id}/platform": {"parameters": [acct, path_param("app_id")],
                "get": op("Show an app's platform attestation settings (Play's decryption key is never shown)", "dev", None, ("200", r("AppPlatform")))},
            "/admin/v1/accounts/{account}/apps/{app_id}/platform/{kind}": {"parameters": [acct, path_param("app_id"), {"name": "kind", "in": "path", "required": true, "schema": {"enum": ["apple", "android", "play"]}}],
                "put": op("Set an app's settings for one platform kind (body: AppleSettings, AndroidSettings, or PlaySettings with decryption_key)", "admin",
                    Some(json!({"oneOf": [r("AppleSettings"), r("AndroidSettings"), {"allOf": [r("PlaySettings"), {"type": "object", "required": ["decryption_key"], "properties": {"decryption_key": {"type": "string", "description": "the 32-byte AES key from Play Console, base64; sealed at rest, never shown again"}}}]}]})),
                    ("200", r("AppPlatform"))),
                "delete": no_content("Remove an app's settings for one platform kind", "admin")},
            "/admin/v1/accounts/{account}/policy": {"parameters": [acct],
                "get": op("Show the policy", "dev", None, ("200", r("Policy")))},
            "/admin/v1/accounts/{account}/policy/{key}": {"parameters": [acct, path_param("key")],
                "put": op("Set one policy key, e.g. reject.debugger", "admin", Some(json!({"type": "object", "required": ["value"], "properties": {"value": {"type": ["boolean", "string"]}}, "additionalProperties": false})), ("200", r("Policy")))},
            "/admin/v1/accounts/{account}/tokens/check": {"parameters": [acct],
                "post": op("Verify a token against the account's keys and decode its arc", "dev", Some(json!({"type": "object", "required": ["token"], "properties": {"token": string, "api": string}, "additionalProperties": false})), ("200", r("TokenReport")))},
            "/admin/v1/accounts/{account}/tokens/example": {"parameters": [acct],
                "post": op("Mint an example token (valid or decoy) for testing a backend", "admin", Some(json!({"type": "object", "required": ["api"], "properties": {"api": string, "invalid": {"type": "boolean"}, "binding": string, "ttl": int}, "additionalProperties": false})), ("200", json!({"type": "object", "properties": {"token": string}})))},
            "/admin/v1/accounts/{account}/metrics": {"parameters": [acct, {"name": "since", "in": "query", "required": false, "schema": int, "description": "window in seconds (3600)"}],
                "get": op("Attestations per outcome and reason over a window", "dev", None, ("200", r("Metrics")))}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "error", "content": {"application/json": {"schema": r("Error")}}}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"], "properties": {"error": string, "message": string}},
                "Api": {"type": "object", "properties": {"domain": string, "alg": string, "ttl": int, "kid": string, "issuer": string, "secret": string}},
                "Registration": {"type": "object", "properties": {"id": string, "app_id": string, "platform": string, "alg": string, "digest": string, "version": {"type": ["string", "null"]}, "created_at": int, "expires_at": {"type": ["integer", "null"]}}},
                "Device": {"type": "object", "properties": {"device_id": string, "action": string, "note": {"type": ["string", "null"]}, "updated_at": int}},
                "Policy": {"type": "object", "properties": {
                    "reject": {"type": "object", "properties": {"debugger": {"type": "boolean"}, "preload": {"type": "boolean"}, "injected": {"type": "boolean"}, "code_patched": {"type": "boolean"}, "emulator": {"type": "boolean"}, "virtualized": {"type": "boolean"}, "root": {"type": "boolean"}}},
                    "reveal_reasons": {"type": "boolean"},
                    "token": {"type": "object", "properties": {"ip": {"type": "boolean"}}},
                    "require": {"type": "object", "properties": {"platform_attestation": {"type": "boolean"}}}}},
                "AppleSettings": {"type": "object", "required": ["team_id", "bundle_id"], "additionalProperties": false, "properties": {"team_id": string, "bundle_id": string, "allow_development": {"type": "boolean"}}},
                "AndroidSettings": {"type": "object", "required": ["package", "signing_digest"], "additionalProperties": false, "properties": {"package": string, "signing_digest": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}, "allow_unlocked": {"type": "boolean"}, "allow_software": {"type": "boolean"}, "min_patch_level": {"type": "integer", "description": "YYYYMM"}}},
                "PlaySettings": {"type": "object", "required": ["package", "verification_key"], "properties": {"package": string, "verification_key": {"type": "string", "description": "DER SubjectPublicKeyInfo (EC P-256), base64"}, "certificate_digest": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}, "device_labels": {"type": "array", "items": string}, "allow_testing_response": {"type": "boolean"}, "max_age_secs": int}},
                "AppPlatform": {"type": "object", "properties": {"app_id": string, "apple": r("AppleSettings"), "android": r("AndroidSettings"), "play": r("PlaySettings")}},
                "TokenReport": {"type": "object", "properties": {"valid": {"type": "boolean"}, "decoy": {"type": "boolean"}, "kid": {"type": ["string", "null"]}, "alg": {"type": ["string", "null"]}, "claims": {}, "reasons": {"type": ["array", "null"], "items": string}, "error": {"type": ["string", "null"]}}},
                "Metrics": {"type": "object", "properties": {"since": int, "outcomes": {"type": "object", "additionalProperties": int}, "reasons": {"type": "object", "additionalProperties": int}}}
            }
        }
    })
}
