//! The one table mechanism of every page: a list of columns (a header, the cells' class, a
//! function from a row to its cell) over a slice of rows, with the message for no rows, in a
//! scrolling box on narrow screens. Tables the pages share (alert lists, counts, blocks) are
//! built on it here.

use crate::fmt::{enc, n, secs, ts};
use crate::pages::{dest_link, kind_title, sev, status};
use dnsight_triage::{BlockRule, Scope, StoredAlert};
use maud::{html, Markup};

/// One column: header, class of its cells (`num`, `name`, `nowrap`, `wide` or ""), the cell.
pub(crate) struct Col<'a, T> {
    head: &'a str,
    class: &'static str,
    cell: Box<dyn Fn(&T) -> Markup + 'a>,
}

pub(crate) fn col<'a, T>(
    head: &'a str,
    class: &'static str,
    cell: impl Fn(&T) -> Markup + 'a,
) -> Col<'a, T> {
    Col {
        head,
        class,
        cell: Box::new(cell),
    }
}

/// The `data-` attributes of a row (the script's keyboard triage reads them).
#[derive(Default)]
pub(crate) struct RowData {
    pub id: Option<String>,
    pub status: Option<&'static str>,
    pub dest: Option<String>,
}

type RowFn<'a, T> = Box<dyn Fn(&T) -> RowData + 'a>;

pub(crate) struct Table<'a, T> {
    cols: Vec<Col<'a, T>>,
    class: Option<&'static str>,
    id: Option<&'static str>,
    empty: &'a str,
    head: bool,
    data: Option<RowFn<'a, T>>,
}

impl<'a, T> Table<'a, T> {
    pub(crate) fn new(cols: Vec<Col<'a, T>>) -> Self {
        Table {
            cols,
            class: None,
            id: None,
            empty: "None.",
            head: true,
            data: None,
        }
    }
    /// The table's class (styles and the script find it by it).
    pub(crate) fn class(mut self, c: &'static str) -> Self {
        self.class = Some(c);
        self
    }
    pub(crate) fn id(mut self, i: &'static str) -> Self {
        self.id = Some(i);
        self
    }
    /// Shown instead of the table when there are no rows.
    pub(crate) fn empty(mut self, e: &'a str) -> Self {
        self.empty = e;
        self
    }
    /// No header row (short lists whose cells say what they are).
    pub(crate) fn headless(mut self) -> Self {
        self.head = false;
        self
    }
    pub(crate) fn row_data(mut self, f: impl Fn(&T) -> RowData + 'a) -> Self {
        self.data = Some(Box::new(f));
        self
    }

    pub(crate) fn render(&self, rows: &[T]) -> Markup {
        let cls = |c: &'static str| (!c.is_empty()).then_some(c);
        html! {
            @if rows.is_empty() { p.dim.empty { (self.empty) } }
            @else {
                div.scroll {
                    table class=[self.class] id=[self.id] {
                        @if self.head {
                            thead { tr { @for c in &self.cols { th class=[cls(c.class)] { (c.head) } } } }
                        }
                        tbody {
                            @for r in rows {
                                @let d = self.data.as_ref().map(|f| f(r)).unwrap_or_default();
                                tr data-id=[d.id] data-status=[d.status] data-dest=[d.dest] {
                                    @for c in &self.cols { td class=[cls(c.class)] { ((c.cell)(r)) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// An alert list: severity, kind (the link), destination, status, last seen.
pub(crate) fn alerts(rows: &[StoredAlert], empty: &str) -> Markup {
    Table::new(vec![
        col("Severity", "", |a: &StoredAlert| sev(a.alert.severity)),
        col("Kind", "", |a: &StoredAlert| {
            html! { a href=(format!("/ui/alerts/{}", enc(&a.alert.id))) { (kind_title(a.alert.kind)) } }
        }),
        col("Destination", "name", |a: &StoredAlert| {
            dest_link(&a.alert.destination)
        }),
        col("Status", "", |a: &StoredAlert| status(a.alert.status)),
        col("Last seen", "nowrap", |a: &StoredAlert| {
            html! { (ts(a.alert.last_seen)) }
        }),
    ])
    .empty(empty)
    .render(rows)
}

/// Open alerts per name (a device or a destination): the name, and the count linking to the
/// inbox filtered by `param`.
pub(crate) fn counts(
    head: &str,
    rows: &[(String, u64)],
    param: &'static str,
    name: impl Fn(&str) -> Markup,
) -> Markup {
    Table::new(vec![
        col(head, "name", |r: &(String, u64)| name(&r.0)),
        col("Open alerts", "num", |r: &(String, u64)| {
            html! { a href=(format!("/ui/alerts?{param}={}", enc(&r.0))) { (n(r.1)) } }
        }),
    ])
    .render(rows)
}

/// Who a rule applies to, in words.
pub(crate) fn scope_label(s: &Scope) -> String {
    match s {
        Scope::All => "everyone".to_string(),
        s => s.label(),
    }
}

/// Blocks and allows; `extra` adds columns (the policy page's author, note and remove button).
pub(crate) fn blocks<'a>(rows: &[BlockRule], extra: Vec<Col<'a, BlockRule>>) -> Markup {
    let mut cols: Vec<Col<'a, BlockRule>> = vec![
        col("", "", |b: &BlockRule| {
            html! { @if b.allow { span.chip { "allow" } } @else { span.chip.hl { "block" } } }
        }),
        col("Name", "name", |b: &BlockRule| {
            html! { (dest_link(&b.name)) @if b.subdomains { span.dim { " and below" } } }
        }),
        col(
            "Scope",
            "",
            |b: &BlockRule| html! { (scope_label(&b.scope)) },
        ),
        col("Expires", "nowrap", |b: &BlockRule| {
            html! { (b.expires_at.map(secs).unwrap_or_else(|| "until removed".into())) }
        }),
    ];
    cols.extend(extra);
    Table::new(cols).id("blocks").render(rows)
}

/// A form that is one button (revoke, remove): POSTs with the session's CSRF token.
pub(crate) fn post_button(action: &str, csrf: &str, label: &str) -> Markup {
    html! {
        form method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            button.link type="submit" { (label) }
        }
    }
}
