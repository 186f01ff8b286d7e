//! The API's OpenAPI document, generated from the wire types ([`super::wire`]), the
//! parameter declarations ([`super::params`]) and the handlers' annotations, so the
//! document and the server cannot disagree.

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::wire::{DetailBody, ErrorBody, IncidentsBody, NoisyBody, ReportBody};

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token of one account, from `mttx token create --account <id>`",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of the report API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mttx report API",
        description = "Incident analytics: MTTA/MTTR, percentiles, deltas, breakdowns, drilldown. Every token sees one account."
    ),
    paths(
        super::reports::report,
        super::incidents::drilldown,
        super::incidents::detail,
        super::reports::noisy,
        super::health,
        super::metrics::scrape,
    ),
    components(schemas(ErrorBody, ReportBody, IncidentsBody, DetailBody, NoisyBody)),
    modifiers(&Bearer),
    security(("bearer" = [])),
)]
#[derive(Debug)]
pub struct ApiDoc;

/// `/openapi.json`.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
