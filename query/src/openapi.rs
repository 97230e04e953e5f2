//! The API's OpenAPI document: what is said once for the whole API (info,
//! tags, the bearer scheme, shared responses), and what each route's
//! [`Access`] adds to its operations. The operations themselves come from
//! the handlers' `#[utoipa::path]` annotations, registered with the
//! router in `lib.rs`, so the document lists exactly the routes served.

use crate::auth::Access;
use crate::views;
use utoipa::openapi::path::{Operation, Paths};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Components, OpenApi as Document, RefOr, Response};
use utoipa::{Modify, OpenApi, ToResponse};

/// The scheme every token goes through.
const BEARER: &str = "bearerAuth";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "catalog",
        version = "1",
        description = "The catalog's HTTP API: Backstage's catalog REST API (read side) under /api/catalog, entity history under /api/history, scorecards under /api/scorecards, adoption metrics under /api/metrics, exports under /api/export, and operations endpoints. Errors use Backstage's error body.",
        license(name = "Apache-2.0", url = "http://www.apache.org/licenses/LICENSE-2.0.html"),
    ),
    servers((url = "/")),
    tags(
        (name = "Entity"),
        (name = "Locations"),
        (name = "History"),
        (name = "Scorecards"),
        (name = "Metrics"),
        (name = "Export"),
        (name = "Operations"),
    ),
    components(
        schemas(views::Error),
        responses(views::ErrorResponse, views::Unauthorized, views::Forbidden)
    ),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

/// The bearer scheme, which the document's derive cannot describe.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut Document) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A token as `Authorization: Bearer <token>`: one of the configured static tokens, \
                 or a JWT of the configured OIDC issuer. Its scopes (`catalog.read`, \
                 `catalog.write`, `scorecards.write`, `admin` for all) decide what it may call; \
                 reads need no token when the deployment opens them. Each caller may be held to a \
                 rate, answered with 429 and `Retry-After` beyond it.",
            ))
            .build();
        doc.components
            .get_or_insert_with(Components::new)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// Adds to each operation of `paths` what `access` asks of its caller: the
/// bearer scheme (optional for reads, which may be open) and the answers
/// for a missing or refused token.
pub fn require(paths: &mut Paths, access: Access) {
    let (scopes, optional) = match access {
        Access::Public => return,
        Access::Read => (vec!["catalog.read".to_owned()], true),
        Access::Need(scope) => (vec![scope.as_str().to_owned()], false),
    };
    for item in paths.paths.values_mut() {
        for op in operations(item) {
            let mut security = Vec::new();
            if optional {
                security.push(SecurityRequirement::default());
            }
            security.push(SecurityRequirement::new(BEARER, scopes.clone()));
            op.security = Some(security);
            let responses = &mut op.responses.responses;
            for (status, response) in [
                ("401", response::<views::Unauthorized>()),
                ("403", response::<views::Forbidden>()),
            ] {
                responses.entry(status.to_owned()).or_insert(response);
            }
        }
    }
}

/// A reference to a shared response.
fn response<'r, R: ToResponse<'r>>() -> RefOr<Response> {
    RefOr::Ref(utoipa::openapi::Ref::from_response_name(R::response().0))
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}
