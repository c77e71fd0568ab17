//! The Gateways page (SPEC §4: both tabs, sort, search, the unattached row, Add a Gateway) and
//! the gateway settings page (SPEC §5: Gateway Information with history, issues, Cluster
//! Status with the removal of offline nodes, Rename, Restart and Delete). Data and actions are the REST side's: the same store overview
//! and row logic as `GET /api/v1/gateways`, and the REST handlers for every change.

use std::fmt::Write as _;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use model::{AccountId, GatewayId};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use store::{GatewayView, OverviewFilter};

use super::{Act, ConsoleError, ConsoleResult, ConsoleUser, Layout, is_https, render};
use crate::auth::Need;
use crate::dto::{
    CreateInstallToken, EnvRef, GatewayRowDto, IssueDto, NodeDto, SeverityDto, StateDto, StatusDto,
    UpdateGateway,
};
use crate::error::ApiError;
use crate::routes::gateways as rest;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/gateways", get(gateways_page))
        .route("/gateways/table", get(gateways_table))
        .route("/gateways/add", get(add_page).post(add_gateway))
        .route("/gateways/{id}", get(settings_page))
        .route("/gateways/{id}/live", get(settings_live))
        .route("/gateways/{id}/restart", axum::routing::post(restart))
        .route("/gateways/{id}/delete", get(delete_page).post(delete))
        .route("/gateways/{id}/rename", get(rename_page).post(rename))
        .route(
            "/gateways/{id}/nodes/{node}/remove",
            axum::routing::post(remove_node),
        )
}

/// How many unattached environments the last row shows before See more...
const UNATTACHED_SHOWN: usize = 3;
/// Longest search the page accepts (as the REST `q`).
const MAX_QUERY_CHARS: usize = 200;
/// Gateway rows a page of the table shows. At ~850 bytes a row, 100 rows keep the page near
/// 100 KB whatever the account's size (1,000 gateways on one page were 853 KB), and a page
/// still reads at a glance; sort and search apply to all gateways before the page is cut.
pub const PAGE_SIZE: usize = 100;

async fn account(state: &AppState, user: &ConsoleUser, need: Need) -> ConsoleResult<AccountId> {
    Ok(user.principal.require(state, need, None).await?)
}

// ---- status icons ---------------------------------------------------------------------------

/// SVG icons (24×24, `currentColor`), one shape per status so that no status depends on
/// colour alone. Each is a `<symbol>` of [`icon::SPRITE`], which every page carries once (in
/// `base.html`); a use is a short `<svg><use href="#i-…"/></svg>`, so a table of 1,000 rows does
/// not repeat the shapes 1,000 times.
pub(super) mod icon {
    macro_rules! icons {
        ($($name:ident $id:literal $body:literal;)*) => {
            $(
                pub const $name: &str = concat!(
                    r##"<svg class="icon" width="16" height="16" aria-hidden="true"><use href="#i-"##,
                    $id,
                    r#""/></svg>"#
                );
            )*
            /// The shapes of every icon, hidden; referenced by id.
            pub const SPRITE: &str = concat!(
                r#"<svg class="sprite" width="0" height="0" aria-hidden="true">"#,
                $(r#"<symbol id="i-"#, $id, r#"" viewBox="0 0 24 24">"#, $body, "</symbol>",)*
                "</svg>"
            );
        };
    }
    icons! {
        ONLINE "online"
            r#"<circle cx="12" cy="12" r="10" fill="currentColor"/><path d="M7 12.5l3.2 3.2L17 9" fill="none" stroke="white" stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round"/>"#;
        STARTING "starting"
            r#"<circle cx="12" cy="12" r="10" fill="none" stroke="currentColor" stroke-width="2.4"/><path d="M10 7.5l6 4.5-6 4.5z" fill="currentColor"/>"#;
        STOPPING "stopping"
            r#"<circle cx="12" cy="12" r="10" fill="none" stroke="currentColor" stroke-width="2.4"/><rect x="8.5" y="8" width="2.5" height="8" fill="currentColor"/><rect x="13" y="8" width="2.5" height="8" fill="currentColor"/>"#;
        RESTARTING "restarting"
            r#"<path d="M19 12a7 7 0 1 1-2.05-4.95" fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round"/><path d="M18.5 3.5v4.5H14" fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round"/>"#;
        UNRESPONSIVE "unresponsive"
            r#"<path d="M19 12a7 7 0 1 1-2.05-4.95" fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round"/><path d="M18.5 3.5v4.5H14" fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round"/><path d="M12 8.5v4" stroke="currentColor" stroke-width="2.4" stroke-linecap="round"/><circle cx="12" cy="15.6" r="1.3" fill="currentColor"/>"#;
        NOT_RUNNING "not-running"
            r#"<circle cx="12" cy="12" r="10" fill="none" stroke="currentColor" stroke-width="2.4"/><rect x="8" y="8" width="8" height="8" rx="1" fill="currentColor"/>"#;
        UNCLEAN "unclean"
            r#"<circle cx="12" cy="12" r="10" fill="none" stroke="currentColor" stroke-width="2.4"/><path d="M13 5.5L8.5 13H12l-1 5.5 4.5-7.5H12z" fill="currentColor"/>"#;
        FAILED_START "failed-start"
            r#"<circle cx="12" cy="12" r="10" fill="none" stroke="currentColor" stroke-width="2.4"/><path d="M8.5 8.5l7 7M15.5 8.5l-7 7" stroke="currentColor" stroke-width="2.4" stroke-linecap="round"/>"#;
        LOST_CONTACT "lost-contact"
            r#"<path d="M2.5 9a14 14 0 0 1 19 0M5.8 12.4a9 9 0 0 1 12.4 0M9.2 15.8a4 4 0 0 1 5.6 0" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round"/><circle cx="12" cy="19" r="1.5" fill="currentColor"/><path d="M4 3l16 18" stroke="currentColor" stroke-width="2.4" stroke-linecap="round"/>"#;
        CLUSTER "cluster"
            r#"<circle cx="6" cy="7" r="3.2" fill="currentColor"/><circle cx="18" cy="7" r="3.2" fill="currentColor"/><circle cx="12" cy="17.5" r="3.2" fill="none" stroke="currentColor" stroke-width="2.2"/><path d="M7.5 9.8l2.8 4.6M16.5 9.8l-2.8 4.6" stroke="currentColor" stroke-width="1.8"/>"#;
        DELETED "deleted"
            r#"<path d="M4 7h16M9.5 7V4.5h5V7M6.5 7l1 13h9l1-13" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linejoin="round"/><path d="M10 11v5M14 11v5" stroke="currentColor" stroke-width="2"/>"#;
        ERROR "error"
            r#"<path d="M8 2.5h8l5.5 5.5v8L16 21.5H8L2.5 16V8z" fill="currentColor"/><path d="M12 7v6" stroke="white" stroke-width="2.4" stroke-linecap="round"/><circle cx="12" cy="16.5" r="1.4" fill="white"/>"#;
        WARNING "warning"
            r#"<path d="M12 2.5L22.5 21H1.5z" fill="currentColor" stroke-linejoin="round"/><path d="M12 9v5.5" stroke="white" stroke-width="2.4" stroke-linecap="round"/><circle cx="12" cy="17.6" r="1.3" fill="white"/>"#;
        SORT_ASC "sort-asc"
            r#"<path d="M12 6l6 8H6z" fill="currentColor"/>"#;
        SORT_DESC "sort-desc"
            r#"<path d="M12 18l6-8H6z" fill="currentColor"/>"#;
        SORT_NONE "sort-none"
            r#"<path d="M12 4l5 6H7zM12 20l5-6H7z" fill="currentColor" opacity=".35"/>"#;
    }
}

/// How a status is shown: icon, colour class, label, variant text and a tooltip.
pub(super) struct Badge {
    pub icon: &'static str,
    /// CSS class carrying the colour: `ok`, `info`, `warn`, `bad`, `off`.
    pub tone: &'static str,
    pub label: &'static str,
    pub variant: Option<&'static str>,
    pub title: &'static str,
    /// The status's machine name, for tests and scripts (`offline/lost_contact`).
    pub code: String,
}

fn badge(status: &StatusDto) -> Badge {
    let code = match &status.variant {
        Some(v) => format!("{}/{v}", status.state),
        None => status.state.to_string(),
    };
    let (icon, tone, label, variant, title) =
        match (status.state.as_str(), status.variant.map(|v| v.as_str())) {
            ("online", _) => (icon::ONLINE, "ok", "Online", None, "Every node is online"),
            ("starting", _) => (
                icon::STARTING,
                "info",
                "Starting",
                None,
                "A node is starting and has not reported online yet",
            ),
            ("stopping", _) => (
                icon::STOPPING,
                "warn",
                "Stopping",
                None,
                "A node is stopping (stop command, SIGTERM or a restart)",
            ),
            ("restarting", Some("unresponsive")) => (
                icon::UNRESPONSIVE,
                "bad",
                "Restarting",
                Some("unresponsive"),
                "The restart began too long ago and the node has not come back",
            ),
            ("restarting", _) => (
                icon::RESTARTING,
                "info",
                "Restarting",
                None,
                "A restart is under way",
            ),
            ("offline", Some("unclean_shutdown")) => (
                icon::UNCLEAN,
                "bad",
                "Offline",
                Some("did not shut down cleanly"),
                "The node said stopping and went silent without saying stopped",
            ),
            ("offline", Some("failed_start")) => (
                icon::FAILED_START,
                "bad",
                "Offline",
                Some("failed to start"),
                "The node did not reach online within the start-up timeout",
            ),
            ("offline", Some("lost_contact")) => (
                icon::LOST_CONTACT,
                "bad",
                "Offline",
                Some("stopped communicating"),
                "No message from the node for the lost-contact threshold",
            ),
            ("offline", _) => (
                icon::NOT_RUNNING,
                "off",
                "Offline",
                Some("not running"),
                "The node shut down cleanly, or no node has joined",
            ),
            ("cluster_issues", _) => (
                icon::CLUSTER,
                "warn",
                "Cluster Issues",
                None,
                "At least one node is online but the cluster does not agree; see the issues",
            ),
            _ => (
                icon::DELETED,
                "off",
                "Deleted",
                None,
                "The gateway was deleted",
            ),
        };
    Badge {
        icon,
        tone,
        label,
        variant,
        title,
        code,
    }
}

/// What to do about an issue, by code (SPEC §3); codes the model defines are matched by its
/// constants, so a renamed code cannot leave a stale arm here.
fn what_to_do(code: &str) -> &'static str {
    use model::status::codes;
    match code {
        codes::NO_NODES => {
            "Start a node with Add a Gateway: it shows the command line with an install token."
        }
        codes::NODE_OFFLINE => {
            "Check the node's host: is `switchyard gateway` running and can it reach the platform?"
        }
        codes::CONFIG_APPLY_FAILED => {
            "The node refused the configuration; read its log, fix the offending setting and save again."
        }
        codes::CONFIG_OUT_OF_SYNC => {
            "Nodes report different configuration generations; wait a minute, then restart the lagging node."
        }
        codes::VERSION_MISMATCH => "Run the same runtime version on every node of the gateway.",
        codes::RESTART_TIMED_OUT => {
            "The node did not come back after the restart; check its host and start it again."
        }
        codes::UNCLEAN_PREVIOUS_EXIT => {
            "The node's previous run ended without a clean shutdown; check its host's log for a crash or kill."
        }
        codes::UPSTREAM_UNREACHABLE => {
            "Check the API's upstream targets and the network path to them."
        }
        "CERTIFICATE_EXPIRES_SOON" | "CERTIFICATE_EXPIRED" => {
            "Upload a renewed TLS certificate for the gateway."
        }
        "PATH_CONFLICT" => "Change an environment path or an API base path so they do not overlap.",
        "DISK_SPACE_LOW" => "Free disk space on the node's host.",
        "UPDATE_FAILED" => "Read the node's log and retry the update.",
        _ => "Read the message and the node's log for the cause.",
    }
}

// ---- the Gateways page ----------------------------------------------------------------------

/// The page's state, all in the URL so it can be bookmarked and works without script.
#[derive(Clone, Debug, Default, serde::Deserialize)]
struct ListQuery {
    view: Option<String>,
    sort: Option<String>,
    order: Option<String>,
    q: Option<String>,
    more: Option<String>,
    tab: Option<String>,
    done: Option<String>,
    page: Option<String>,
}

/// [`ListQuery`] read leniently: unknown values fall back to the defaults.
#[derive(Clone, Debug)]
struct ListState {
    deleted: bool,
    sort: &'static str,
    desc: bool,
    q: String,
    more: bool,
    /// 1-based; a page past the last is answered by the last (see [`gateways_page`]).
    page: usize,
}

impl ListState {
    fn from(query: &ListQuery) -> Self {
        let sort = match query.sort.as_deref() {
            Some("status") => "status",
            Some("host_name") => "host_name",
            Some("gateway_url") => "gateway_url",
            _ => "name",
        };
        Self {
            deleted: query.view.as_deref() == Some("deleted"),
            sort,
            desc: query.order.as_deref() == Some("desc"),
            q: query
                .q
                .as_deref()
                .unwrap_or("")
                .trim()
                .chars()
                .take(MAX_QUERY_CHARS)
                .collect(),
            more: query.more.as_deref() == Some("1"),
            page: query
                .page
                .as_deref()
                .and_then(|p| p.trim().parse::<usize>().ok())
                .filter(|p| *p >= 1)
                .unwrap_or(1),
        }
    }

    /// The query string of this state (defaults left out), starting with `?` when not empty.
    fn query(&self) -> String {
        let mut parts = Vec::new();
        if self.deleted {
            parts.push("view=deleted".to_string());
        }
        if self.sort != "name" {
            parts.push(format!("sort={}", self.sort));
        }
        if self.desc {
            parts.push("order=desc".into());
        }
        if !self.q.is_empty() {
            parts.push(format!(
                "q={}",
                utf8_percent_encode(&self.q, NON_ALPHANUMERIC)
            ));
        }
        if self.more {
            parts.push("more=1".into());
        }
        if self.page > 1 {
            parts.push(format!("page={}", self.page));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    fn href(&self) -> String {
        format!("/gateways{}", self.query())
    }

    fn with(&self, change: impl FnOnce(&mut Self)) -> String {
        let mut next = self.clone();
        change(&mut next);
        next.href()
    }
}

/// A sortable column header: its link toggles the order.
struct SortHeader {
    label: &'static str,
    key: &'static str,
    href: String,
    /// `ascending`, `descending` or `none` (the `aria-sort` value).
    aria: &'static str,
    icon: &'static str,
}

struct RowView {
    id: String,
    name: String,
    badge: Badge,
    deleted: bool,
    errors: Vec<IssueDto>,
    warnings: Vec<IssueDto>,
    environments: Vec<EnvRef>,
    host_name: Option<String>,
    gateway_url: String,
}

impl RowView {
    fn new(row: GatewayRowDto) -> Self {
        let deleted = row.status.state == StateDto::Deleted;
        let (errors, warnings): (Vec<IssueDto>, Vec<IssueDto>) = row
            .issues
            .into_iter()
            .filter(|_| !deleted)
            .partition(|i| i.severity == SeverityDto::Error);
        Self {
            id: row.id.to_string(),
            badge: badge(&row.status),
            name: row.name,
            deleted,
            errors,
            warnings,
            environments: row.environments,
            host_name: row.host_name,
            // None until a node reported a reachable address (and no Public URL is set).
            gateway_url: row.gateway_url.unwrap_or_else(|| "—".into()),
        }
    }

    fn issue_codes(list: &[IssueDto]) -> String {
        list.iter()
            .map(|i| format!("{}: {}", i.code, i.message))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[derive(Template)]
#[template(path = "gateways_table.html")]
struct GatewaysTable {
    headers: Vec<SortHeader>,
    rows: Vec<RowView>,
    unattached: Vec<EnvRef>,
    more: bool,
    more_href: String,
    less_href: String,
    shown: usize,
    deleted: bool,
    q: String,
    clear_href: String,
    error_icon: &'static str,
    warning_icon: &'static str,
    pager: Pager,
}

/// The table's page among all the gateways the view and search select.
struct Pager {
    /// "Showing 101–200 of 1,000" (empty when nothing is shown).
    summary: String,
    /// Previous and next pages' links, `None` at either end.
    prev: Option<String>,
    next: Option<String>,
    /// The page links: the first, the last, and the current one with two either side; a
    /// `None` href is a gap (…). Empty when everything fits on one page.
    links: Vec<PageLink>,
}

struct PageLink {
    number: usize,
    href: Option<String>,
    current: bool,
}

/// `n` with thousands separated by commas, as the page's English text reads.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How many pages `total` rows fill (at least one, so an empty list has page 1).
fn page_count(total: usize) -> usize {
    total.div_ceil(PAGE_SIZE).max(1)
}

impl Pager {
    /// The pager of `list` (whose page is within `1..=page_count(total)`).
    fn new(list: &ListState, total: usize) -> Self {
        let pages = page_count(total);
        let page = list.page;
        let href = |n: usize| list.with(|s| s.page = n);
        let from = (page - 1) * PAGE_SIZE + 1;
        let to = (page * PAGE_SIZE).min(total);
        let summary = if total == 0 {
            String::new()
        } else {
            format!(
                "Showing {}–{} of {} gateway{}",
                thousands(from),
                thousands(to),
                thousands(total),
                if total == 1 { "" } else { "s" }
            )
        };
        let mut links = Vec::new();
        if pages > 1 {
            let mut last_shown = 0;
            for n in 1..=pages {
                let near = n + 2 >= page && n <= page + 2;
                if n == 1 || n == pages || near {
                    if last_shown + 1 < n {
                        links.push(PageLink {
                            number: 0,
                            href: None,
                            current: false,
                        });
                    }
                    links.push(PageLink {
                        number: n,
                        href: Some(href(n)),
                        current: n == page,
                    });
                    last_shown = n;
                }
            }
        }
        Self {
            summary,
            prev: (page > 1).then(|| href(page - 1)),
            next: (page < pages).then(|| href(page + 1)),
            links,
        }
    }
}

#[derive(Template)]
#[template(path = "gateways.html")]
struct GatewaysPage {
    l: Layout,
    migration_tab: bool,
    can_manage: bool,
    deleted: bool,
    q: String,
    sort: &'static str,
    order: &'static str,
    more: bool,
    enabled_href: String,
    deleted_href: String,
    live_href: String,
    table: String,
    migrations: Vec<MigrationRow>,
}

struct MigrationRow {
    step: String,
    environment: String,
    from: String,
    to: String,
    error: Option<&'static str>,
}

/// The table of `list`, and the page it shows: `list.page`, or the last page when that is
/// past the end.
async fn table(
    state: &AppState,
    account: AccountId,
    list: &ListState,
) -> ConsoleResult<(String, usize)> {
    let view = if list.deleted {
        GatewayView::Deleted
    } else {
        GatewayView::Enabled
    };
    let overview = state
        .store
        .gateways_overview(account, view, OverviewFilter::search(&list.q))
        .await?;
    // Sort (and the store's search) cover every gateway of the view; only then is the page
    // cut, so page 2 of "by status" is the 101st to 200th gateway by status.
    let mut rows: Vec<GatewayRowDto> = rest::overview_rows(state, &overview.gateways);
    rest::sort_rows(&mut rows, list.sort, list.desc);
    let total = rows.len();
    let mut list = list.clone();
    list.page = list.page.min(page_count(total));
    let list = &list;
    let header = |label, key| {
        let current = list.sort == key;
        let next_desc = current && !list.desc;
        SortHeader {
            label,
            key,
            // A new order starts at its first page: the old page number means nothing in it.
            href: list.with(|s| {
                s.sort = key;
                s.desc = next_desc;
                s.page = 1;
            }),
            aria: match (current, list.desc) {
                (false, _) => "none",
                (true, false) => "ascending",
                (true, true) => "descending",
            },
            icon: match (current, list.desc) {
                (false, _) => icon::SORT_NONE,
                (true, false) => icon::SORT_ASC,
                (true, true) => icon::SORT_DESC,
            },
        }
    };
    let page = GatewaysTable {
        headers: vec![
            header("Status", "status"),
            header("Gateway Name", "name"),
            header("Host Name", "host_name"),
            header("Gateway URL", "gateway_url"),
        ],
        pager: Pager::new(list, total),
        rows: rows
            .into_iter()
            .skip((list.page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .map(RowView::new)
            .collect(),
        // Deleted gateways have no environments; the unattached row belongs to the enabled
        // view. It is on every page: it is not a gateway, so paging does not split it, and an
        // operator on any page (or searching) sees which environments still need a gateway.
        unattached: if list.deleted {
            Vec::new()
        } else {
            overview.unattached.iter().map(EnvRef::from).collect()
        },
        more: list.more,
        more_href: list.with(|s| s.more = true),
        less_href: list.with(|s| s.more = false),
        shown: UNATTACHED_SHOWN,
        deleted: list.deleted,
        q: list.q.clone(),
        clear_href: list.with(|s| {
            s.q.clear();
            s.page = 1;
        }),
        error_icon: icon::ERROR,
        warning_icon: icon::WARNING,
    };
    let html = page.render().map_err(|error| {
        tracing::error!(%error, "console template failed");
        ConsoleError::from(ApiError::internal())
    })?;
    Ok((html, list.page))
}

async fn gateways_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(query): Query<ListQuery>,
) -> ConsoleResult<Response> {
    let account = account(&state, &user, Need::Member).await?;
    let list = ListState::from(&query);
    let migration_tab = query.tab.as_deref() == Some("migration");
    let notice = match query.done.as_deref() {
        Some("deleted") => Some("The gateway was deleted. Its environments are now unattached."),
        _ => None,
    };
    let (table, migrations) = if migration_tab {
        (String::new(), migration_rows(&state, account).await?)
    } else {
        let (html, page) = table(&state, account, &list).await?;
        if page != list.page {
            // Past the last page (a stale bookmark, gateways deleted since): the last page,
            // at its own address so the pager and the address bar agree.
            return Ok(Redirect::to(&list.with(|s| s.page = page)).into_response());
        }
        (html, Vec::new())
    };
    Ok(render(&GatewaysPage {
        l: Layout::new(&user, "Gateways", "gateways").with_notice(notice),
        migration_tab,
        can_manage: user.principal.user.role.can_manage(),
        deleted: list.deleted,
        q: list.q.clone(),
        sort: list.sort,
        order: if list.desc { "desc" } else { "asc" },
        more: list.more,
        enabled_href: list.with(|s| {
            s.deleted = false;
            s.page = 1;
        }),
        deleted_href: list.with(|s| {
            s.deleted = true;
            s.page = 1;
        }),
        live_href: format!("/gateways/table{}", list.query()),
        table,
        migrations,
    }))
}

/// The table alone, for the script's live refresh and instant search.
async fn gateways_table(
    State(state): State<AppState>,
    user: ConsoleUser,
    Query(query): Query<ListQuery>,
) -> ConsoleResult<Response> {
    let account = account(&state, &user, Need::Member).await?;
    // Only the page asked for is rendered and sent: the live refresh of page 3 re-reads
    // page 3 (the last page if the list shrank under it), never the whole list.
    let (html, _) = table(&state, account, &ListState::from(&query)).await?;
    Ok(axum::response::Html(html).into_response())
}

/// The Environment Migration tab's rows: the account's migrations in progress.
async fn migration_rows(state: &AppState, account: AccountId) -> ConsoleResult<Vec<MigrationRow>> {
    let migrations = state.store.migrations_in_progress(account).await?;
    if migrations.is_empty() {
        return Ok(Vec::new());
    }
    let environments = state.store.environments(account).await?;
    let mut gateways = state.store.gateways(account, GatewayView::Enabled).await?;
    let deleted = state.store.gateways(account, GatewayView::Deleted).await?;
    let deleted_ids: Vec<GatewayId> = deleted.iter().map(|g| g.id).collect();
    gateways.extend(deleted);
    let gateway_name = |id: Option<GatewayId>| {
        id.and_then(|id| gateways.iter().find(|g| g.id == id))
            .map(|g| g.name.clone())
            .unwrap_or_default()
    };
    Ok(migrations
        .iter()
        .map(|m| {
            let step = m.state.get("step").and_then(|s| s.as_u64()).unwrap_or(1);
            let step_name = match step {
                2 => "2 · Runtime check",
                3 => "3 · APIs review",
                _ => "1 · Destination and paths",
            };
            let gone = [m.from_gateway_id, m.to_gateway_id]
                .iter()
                .flatten()
                .any(|g| deleted_ids.contains(g));
            MigrationRow {
                step: step_name.into(),
                environment: environments
                    .iter()
                    .find(|e| e.id == m.environment_id)
                    .map(|e| e.name.clone())
                    .unwrap_or_default(),
                from: gateway_name(m.from_gateway_id),
                to: gateway_name(m.to_gateway_id),
                error: gone.then_some(
                    "A gateway of this migration was deleted; delete the migration and create a new one.",
                ),
            }
        })
        .collect())
}

// ---- Add a Gateway --------------------------------------------------------------------------

/// Validities offered for an install token, in minutes (SPEC: 30 min to 24 h).
const VALIDITIES: [(i64, &str); 7] = [
    (30, "30 minutes"),
    (60, "1 hour"),
    (120, "2 hours"),
    (240, "4 hours"),
    (480, "8 hours"),
    (720, "12 hours"),
    (1440, "24 hours"),
];

#[derive(Template)]
#[template(path = "gateway_add.html")]
struct AddPage {
    l: Layout,
    name: String,
    minutes: i64,
    validities: &'static [(i64, &'static str)],
    name_error: Option<String>,
    validity_error: Option<String>,
    created: Option<Created>,
}

struct Created {
    expires_at: String,
    command: String,
    valid_for: &'static str,
}

async fn add_page(State(state): State<AppState>, user: ConsoleUser) -> ConsoleResult<Response> {
    account(&state, &user, Need::Manage).await?;
    Ok(render(&AddPage {
        l: Layout::new(&user, "Add a Gateway", "gateways"),
        name: String::new(),
        minutes: 60,
        validities: &VALIDITIES,
        name_error: None,
        validity_error: None,
        created: None,
    }))
}

/// Quotes `s` for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '@'));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The platform's URL as the browser reached it (what a node on the same network can use).
fn platform_origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("127.0.0.1:8080");
    let scheme = if is_https(headers) { "https" } else { "http" };
    format!("{scheme}://{host}")
}

async fn add_gateway(
    State(state): State<AppState>,
    headers: HeaderMap,
    act: Act,
) -> ConsoleResult<Response> {
    let user = &act.user;
    account(&state, user, Need::Manage).await?;
    let raw_name = act.form.text("name");
    let minutes: i64 = act.form.text("valid_for_minutes").parse().unwrap_or(0);
    let mut page = AddPage {
        l: Layout::new(user, "Add a Gateway", "gateways"),
        name: raw_name.clone(),
        minutes,
        validities: &VALIDITIES,
        name_error: None,
        validity_error: None,
        created: None,
    };
    let name = match model::validate::validate_gateway_name(&raw_name) {
        Ok(name) => Some(name),
        Err(e) => {
            page.name_error = Some(format!(
                "{} ({}). Choose another name.",
                sentence(&e.to_string()),
                e.code()
            ));
            None
        }
    };
    let valid_for = VALIDITIES
        .iter()
        .find(|(m, _)| *m == minutes)
        .map(|(_, l)| *l);
    if valid_for.is_none() {
        page.validity_error = Some("Choose a validity from 30 minutes to 24 hours.".into());
    }
    let (Some(name), Some(valid_for)) = (name, valid_for) else {
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    };
    let created = crate::routes::tokens::create_install_token(
        State(state.clone()),
        user.principal(),
        headers.clone(),
        crate::json::Json(CreateInstallToken {
            valid_for_minutes: minutes,
        }),
    )
    .await?;
    let token = created.1.0;
    let command = format!(
        "switchyard gateway --platform {} --install-token {} --name {}",
        platform_origin(&headers),
        token.token,
        shell_quote(&name)
    );
    page.name = name;
    page.created = Some(Created {
        expires_at: super::when(&token.expires_at, state.now()),
        command,
        valid_for,
    });
    Ok(render(&page))
}

/// A message as a sentence: capitalised, with a full stop.
pub(super) fn sentence(message: &str) -> String {
    let mut s = String::new();
    let mut chars = message.chars();
    if let Some(first) = chars.next() {
        s.extend(first.to_uppercase());
        s.push_str(chars.as_str());
    }
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

// ---- the gateway settings page --------------------------------------------------------------

struct NodeView {
    node: NodeDto,
    badge: Badge,
    head: bool,
}

struct HistoryView {
    badge: Badge,
    at: String,
}

#[derive(Template)]
#[template(path = "gateway_panels.html")]
struct Panels {
    id: String,
    badge: Badge,
    since: Option<String>,
    deleted: bool,
    issues: Vec<IssueView>,
    nodes: Vec<NodeView>,
    history: Vec<HistoryView>,
    host_name: Option<String>,
    gateway_url: String,
    public_url: Option<String>,
    bind_address: String,
    installed: Option<String>,
    version: Option<String>,
    created_at: String,
    deleted_at: Option<String>,
    name: String,
    environments: Vec<EnvRef>,
    now: model::Timestamp,
    /// Whether the viewer may remove offline nodes, and the token of that form (the panels
    /// are re-rendered by the live refresh, so they carry it themselves).
    can_manage: bool,
    csrf: String,
}

impl Panels {
    /// A time of the panels as people read it.
    fn t(&self, rfc3339: &str) -> String {
        super::when(rfc3339, self.now)
    }
}

struct IssueView {
    issue: IssueDto,
    icon: &'static str,
    what_to_do: &'static str,
}

#[derive(Template)]
#[template(path = "gateway.html")]
struct SettingsPage {
    l: Layout,
    id: String,
    name: String,
    deleted: bool,
    owner: bool,
    can_manage: bool,
    panels: String,
}

async fn panels(state: &AppState, user: &ConsoleUser, raw: &str) -> ConsoleResult<Panels> {
    let account = account(state, user, Need::Member).await?;
    let id: GatewayId = raw
        .parse()
        .map_err(|_| ConsoleError::not_found("gateway"))?;
    let gateway = rest::gateway_dto(state, account, id).await.map_err(|e| {
        if e.status == StatusCode::NOT_FOUND {
            ConsoleError::not_found("gateway")
        } else {
            e.into()
        }
    })?;
    let nodes = rest::list_nodes(
        State(state.clone()),
        user.principal(),
        Path(raw.to_string()),
    )
    .await?
    .0
    .nodes;
    let history = state.store.gateway_status_history(account, id, 20).await?;
    let row = gateway.row;
    let deleted = row.status.state == StateDto::Deleted;
    // The head node: the oldest node that is not offline, else the oldest (SPEC §4).
    let head = nodes
        .iter()
        .position(|n| n.status.state != StateDto::Offline)
        .or(if nodes.is_empty() { None } else { Some(0) });
    let since = history
        .first()
        .filter(|h| StatusDto::from(h.status) == row.status)
        .map(|h| crate::dto::rfc3339(h.since));
    Ok(Panels {
        id: row.id.to_string(),
        badge: badge(&row.status),
        since,
        deleted,
        issues: row
            .issues
            .iter()
            .filter(|_| !deleted)
            .map(|i| IssueView {
                icon: if i.severity == SeverityDto::Error {
                    icon::ERROR
                } else {
                    icon::WARNING
                },
                what_to_do: what_to_do(&i.code),
                issue: i.clone(),
            })
            .collect(),
        installed: nodes.iter().map(|n| n.joined_at.clone()).min(),
        version: head.map(|h| nodes[h].version.clone()),
        nodes: nodes
            .into_iter()
            .enumerate()
            .map(|(i, node)| NodeView {
                badge: badge(&node.status),
                head: Some(i) == head,
                node,
            })
            .collect(),
        history: history
            .iter()
            .map(|h| HistoryView {
                badge: badge(&StatusDto::from(h.status)),
                at: crate::dto::rfc3339(h.since),
            })
            .collect(),
        host_name: row.host_name,
        gateway_url: row
            .gateway_url
            .unwrap_or_else(|| "none yet: no node has reported its address".into()),
        public_url: gateway.public_url,
        bind_address: gateway.bind_address,
        created_at: gateway.created_at,
        deleted_at: gateway.deleted_at,
        name: row.name,
        environments: row.environments,
        now: state.now(),
        can_manage: user.principal.user.role.can_manage(),
        csrf: user.csrf.clone(),
    })
}

#[derive(serde::Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn settings_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
    Query(query): Query<DoneQuery>,
) -> ConsoleResult<Response> {
    let panels = panels(&state, &user, &raw).await?;
    let notice = match query.done.as_deref() {
        Some("restart") => {
            Some("Restart requested: the nodes restart one at a time; the status below follows it.")
        }
        Some("renamed") => Some("Gateway renamed."),
        Some("node_removed") => Some(
            "Node removed and its credential revoked. To bring it back, join it again with a new \
             install token (Add a Gateway).",
        ),
        _ => None,
    };
    let html = panels.render().map_err(|error| {
        tracing::error!(%error, "console template failed");
        ConsoleError::from(ApiError::internal())
    })?;
    Ok(render(&SettingsPage {
        l: Layout::new(&user, panels.name.clone(), "gateways").with_notice(notice),
        id: panels.id.clone(),
        name: panels.name.clone(),
        deleted: panels.deleted,
        owner: user.principal.user.role.is_owner(),
        can_manage: user.principal.user.role.can_manage(),
        panels: html,
    }))
}

async fn settings_live(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
) -> ConsoleResult<Response> {
    let panels = panels(&state, &user, &raw).await?;
    Ok(render(&panels))
}

/// Next steps for the refusals of Restart and Delete.
fn action_error(error: ApiError) -> ConsoleError {
    let code = error.code.clone();
    let mut e = ConsoleError::from(error);
    if code == "NO_NODE_ONLINE" {
        e.next_step = "Start the gateway's nodes on their hosts (`switchyard gateway …`); a \
                       restart needs at least one online node."
            .into();
    }
    e
}

async fn restart(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    act: Act,
) -> ConsoleResult<Response> {
    let _accepted = crate::routes::commands::restart_gateway(
        State(state),
        act.user.principal(),
        Path(raw.clone()),
    )
    .await
    .map_err(action_error)?;
    Ok(Redirect::to(&format!("/gateways/{raw}?done=restart")).into_response())
}

#[derive(Template)]
#[template(path = "gateway_delete.html")]
struct DeletePage {
    l: Layout,
    id: String,
    name: String,
    environments: Vec<EnvRef>,
    migrations: usize,
}

async fn delete_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
) -> ConsoleResult<Response> {
    let account = account(&state, &user, Need::Owner).await?;
    let p = panels(&state, &user, &raw).await?;
    if p.deleted {
        return Err(ConsoleError::new(
            StatusCode::NOT_FOUND,
            "Already deleted",
            "This gateway is already deleted; deleted gateways cannot be changed or restored.",
            "Go back to the Gateways page.",
        ));
    }
    let id: GatewayId = raw
        .parse()
        .map_err(|_| ConsoleError::not_found("gateway"))?;
    let migrations = state
        .store
        .migrations_in_progress(account)
        .await?
        .iter()
        .filter(|m| m.from_gateway_id == Some(id) || m.to_gateway_id == Some(id))
        .count();
    let mut title = String::new();
    let _ = write!(title, "Delete {}", p.name);
    Ok(render(&DeletePage {
        l: Layout::new(&user, title, "gateways"),
        id: p.id,
        name: p.name,
        environments: p.environments,
        migrations,
    }))
}

async fn delete(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    act: Act,
) -> ConsoleResult<Response> {
    rest::delete_gateway(State(state), act.user.principal(), Path(raw))
        .await
        .map_err(action_error)?;
    Ok(Redirect::to("/gateways?view=deleted&done=deleted").into_response())
}

// ---- rename and node removal ----------------------------------------------------------------

#[derive(Template)]
#[template(path = "gateway_rename.html")]
struct RenamePage {
    l: Layout,
    id: String,
    current_name: String,
    name: String,
    errors: super::form::FieldErrors,
}

async fn rename_page(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(raw): Path<String>,
) -> ConsoleResult<Response> {
    account(&state, &user, Need::Manage).await?;
    let p = panels(&state, &user, &raw).await?;
    if p.deleted {
        return Err(ConsoleError::new(
            StatusCode::NOT_FOUND,
            "Already deleted",
            "This gateway is deleted; deleted gateways cannot be changed.",
            "Go back to the Gateways page.",
        ));
    }
    Ok(render(&RenamePage {
        l: Layout::new(&user, format!("Rename {}", p.name), "gateways"),
        id: p.id,
        current_name: p.name.clone(),
        name: p.name,
        errors: super::form::FieldErrors::default(),
    }))
}

async fn rename(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    act: Act,
) -> ConsoleResult<Response> {
    let name = act.form.text("name");
    let saved = rest::update_gateway(
        State(state.clone()),
        act.user.principal(),
        Path(raw.clone()),
        crate::json::Json(UpdateGateway {
            name: Some(name.clone()),
        }),
    )
    .await;
    let errors = match saved {
        Ok(_) => return Ok(Redirect::to(&format!("/gateways/{raw}?done=renamed")).into_response()),
        Err(e) => super::form::FieldErrors::from_refusal(e, &["name"])?,
    };
    let p = panels(&state, &act.user, &raw).await?;
    let page = RenamePage {
        l: Layout::new(&act.user, format!("Rename {}", p.name), "gateways"),
        id: p.id,
        current_name: p.name,
        name,
        errors,
    };
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
}

async fn remove_node(
    State(state): State<AppState>,
    Path((raw, node)): Path<(String, String)>,
    act: Act,
) -> ConsoleResult<Response> {
    rest::remove_node(
        State(state),
        act.user.principal(),
        Path((raw.clone(), node)),
    )
    .await
    .map_err(|error| {
        let code = error.code.clone();
        let mut e = ConsoleError::from(error);
        if code == "NODE_NOT_OFFLINE" {
            e.next_step = "Stop the node on its host first (or wait until it is reported \
                               offline), then remove it."
                .into();
        }
        e
    })?;
    Ok(Redirect::to(&format!("/gateways/{raw}?done=node_removed")).into_response())
}
