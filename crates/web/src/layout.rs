//! The page chrome: head, navigation, the signed-in user, error pages.

use crate::session::User;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

/// A rendered HTML page.
pub(crate) struct Page(pub Markup);

/// The navigation, in the order of the pages.
pub(crate) const NAV: &[(&str, &str, &str)] = &[
    ("overview", "/ui/", "Overview"),
    ("alerts", "/ui/alerts", "Alerts"),
    ("devices", "/ui/devices", "Devices"),
    ("destinations", "/ui/destinations", "Destinations"),
    ("queries", "/ui/queries", "Query log"),
    ("policy", "/ui/policy", "Policy"),
    ("settings", "/ui/settings", "Settings"),
];

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        meta name="color-scheme" content="light dark";
        title { (title) " · dnsight" }
        link rel="stylesheet" href=(crate::assets::url("app.css"));
        script src=(crate::assets::url("app.js")) defer {}
    }
}

/// A page without navigation (sign-in, errors before sign-in).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body { (body) }
        }
    }
}

/// A signed-in page: navigation with `active` marked, the user and sign-out, then `body`.
pub(crate) fn shell(title: &str, user: &User, active: &str, body: Markup) -> Page {
    Page(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head(title))
                meta name="csrf" content=(user.0.csrf);
                meta name="role" content=(user.0.role.as_str());
            }
            body data-page=(active) {
                header.top {
                    a.brand href="/ui/" { "dnsight" }
                    nav aria-label="Main" {
                        @for (id, href, label) in NAV {
                            @if *id == active {
                                a href=(href) aria-current="page" { (label)
                                    @if *id == "alerts" { " " span #open-count .badge {} }
                                }
                            } @else {
                                a href=(href) { (label)
                                    @if *id == "alerts" { " " span #open-count .badge {} }
                                }
                            }
                        }
                    }
                    div.who {
                        span title="Signed in" { (user.0.user) " · " (user.0.role.as_str()) }
                        form method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(user.0.csrf);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                div #live role="status" aria-live="polite" {}
                main { (body) }
            }
        }
    })
}

/// An error page with the status and what to do.
pub(crate) fn error_page(status: StatusCode, msg: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let page = Page(bare(
        title,
        html! {
            main.login {
                h1 { (status.as_u16()) " " (title) }
                p.error role="alert" { (msg) }
                p { a href="/ui/" { "Back to the dashboard" } }
            }
        },
    ));
    (status, page).into_response()
}

pub(crate) fn not_found(msg: &str) -> Response {
    error_page(StatusCode::NOT_FOUND, msg)
}
