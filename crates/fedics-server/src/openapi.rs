//! The OpenAPI 3.1 document: generated from the same `routes!` registrations that build the
//! router, so every served route is described.

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FedICS API",
        description = "Alerts, federated-learning rounds, predictions and the ATT&CK for ICS graph of a FedICS deployment, and the WebSocket feed on /ws.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&Security),
    tags(
        (name = "alerts", description = "Incidents with their evidence"),
        (name = "federation", description = "Federated-learning rounds, clients and the privacy ledger"),
        (name = "predictions", description = "Predicted next techniques"),
        (name = "mitre", description = "ATT&CK for ICS"),
        (name = "auth", description = "Login, the caller, the audit log"),
        (name = "system", description = "Health, readiness, metrics, WebSocket")
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The document's fixed part (info, tags, security schemes); paths are added by the router.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The complete OpenAPI document of the server, as JSON.
pub fn openapi_document() -> serde_json::Value {
    let doc = crate::routes::api_router().into_openapi();
    serde_json::to_value(&doc).unwrap_or(serde_json::Value::Null)
}
