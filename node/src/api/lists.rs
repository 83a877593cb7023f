//! Paging and search on the inbox and outbox (`docs/local-api.md`, "Paging and search"): every
//! filter a clerk's list or an office system asks for, applied to the dispatch views.

use super::{ApiError, Query, View};

/// The views `query` selects, newest first as given, and how many matched before `limit` and
/// `offset` cut the page.
pub(super) fn select<'a>(
    views: Vec<View<'a>>,
    query: &Query,
    inbox: bool,
) -> Result<(usize, Vec<View<'a>>), ApiError> {
    let q = query.get("q").map(str::to_lowercase);
    let party = query.get("party");
    let state = query.get("state");
    let urgency = query.get("urgency");
    let classification = query.get("classification");
    let since = query.number("since")?;
    let until = query.number("until")?;
    let limit = query.number("limit")?.map(|n| n as usize);
    let offset = query.number("offset")?.unwrap_or(0) as usize;
    let contains =
        |field: Option<&str>, q: &str| field.is_some_and(|f| f.to_lowercase().contains(q));
    let matched: Vec<View<'a>> = views
        .into_iter()
        .filter(|v| {
            q.as_deref().is_none_or(|q| {
                contains(v.number, q) || contains(v.notation, q) || contains(v.subject, q)
            })
        })
        .filter(|v| party.is_none_or(|p| if inbox { v.from == p } else { v.to == p }))
        .filter(|v| {
            state.is_none_or(|s| {
                v.status == s
                    || v.workflow == Some(s)
                    || (s == "overdue" && v.overdue == Some(true))
            })
        })
        .filter(|v| urgency.is_none_or(|u| v.urgency == u))
        .filter(|v| classification.is_none_or(|c| v.classification == Some(c)))
        .filter(|v| since.is_none_or(|t| v.created >= t))
        .filter(|v| until.is_none_or(|t| v.created <= t))
        .collect();
    let total = matched.len();
    let page = matched
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    Ok((total, page))
}
