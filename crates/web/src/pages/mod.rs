//! One module per page.

pub(crate) mod alert;
pub(crate) mod alerts;
pub(crate) mod destinations;
pub(crate) mod devices;
pub(crate) mod live;
pub(crate) mod overview;
pub(crate) mod policy;
pub(crate) mod queries;
pub(crate) mod settings;

use crate::fmt::enc;
use crate::session::FormData;
use dnsight_api::{ActionBody, TimeArg};
use dnsight_engine::{Kind, Severity, Status};
use maud::{html, Markup};

pub(crate) fn sev(s: Severity) -> Markup {
    html! { span class=(format!("sev {}", s.as_str())) { (s.as_str()) } }
}

pub(crate) fn status(s: Status) -> Markup {
    html! { span class=(format!("st {}", s.as_str())) { (s.as_str()) } }
}

pub(crate) fn kind_title(k: Kind) -> &'static str {
    &k.info().title
}

pub(crate) fn device_link(ip: &str, name: Option<&str>) -> Markup {
    html! {
        a href=(format!("/ui/devices/{}", enc(ip))) {
            @if let Some(n) = name { (n) " " span.dim { (ip) } } @else { (ip) }
        }
    }
}

pub(crate) fn dest_link(d: &str) -> Markup {
    html! {
        @if d.is_empty() { span.dim { "—" } }
        @else { a href=(format!("/ui/destinations/{}", enc(d))) { (d) } }
    }
}

/// The API's action body from a dashboard form: only the fields that apply to the action are
/// taken, so a form may carry them all.
pub(crate) fn action_body(form: &FormData) -> ActionBody {
    let action = form.get("action").unwrap_or("").trim().to_string();
    let text = |k: &str| form.get(k).map(|v| v.trim().to_string());
    let (mut scope, mut until, mut target, mut duration, mut reason) =
        (None, None, None, None, None);
    match action.as_str() {
        "ack" | "acknowledge" => {
            scope = text("scope");
            until = text("until").map(TimeArg::Text);
        }
        "block" => {
            scope = text("scope");
            target = text("target");
            duration = text("for").map(TimeArg::Text);
        }
        "resolve" => reason = text("reason"),
        _ => {}
    }
    ActionBody {
        action,
        scope,
        until,
        target,
        duration,
        reason,
        note: text("note"),
        ids: None,
        filter: None,
        dry_run: false,
    }
}

/// Past tense of an action, for messages.
pub(crate) fn done(action: &str) -> &'static str {
    match action {
        "ack" | "acknowledge" => "acknowledged",
        "flag" => "flagged",
        "block" => "blocked",
        "unblock" => "unblocked",
        "resolve" => "resolved",
        "note" => "noted",
        "reopen" => "reopened",
        _ => "done",
    }
}

/// The action forms' shared fields: scope, expiry, note.
pub(crate) fn scope_select(name: &str) -> Markup {
    html! {
        label { "Scope "
            select name=(name) {
                option value="device" selected { "this device" }
                option value="group" { "its group" }
                option value="all" { "everyone" }
            }
        }
    }
}

pub(crate) fn reason_select() -> Markup {
    html! {
        label { "Reason "
            select name="reason" {
                option value="true_positive" { "true positive" }
                option value="benign_positive" selected { "benign positive" }
                option value="false_positive" { "false positive" }
                option value="duplicate" { "duplicate" }
            }
        }
    }
}
