//! Live updates: server-sent events with the open-alert count and the time of the latest
//! change, sent when either changes (checked every 2 s; a comment line every 15 s keeps
//! proxies from closing the stream).

use crate::session::User;
use crate::Web;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use std::convert::Infallible;
use std::time::Duration;

pub(crate) async fn events(
    State(web): State<Web>,
    _user: User,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream =
        futures_util::stream::unfold((web, None::<(u64, i64)>), |(web, last)| async move {
            let mut wait = last.is_some();
            loop {
                if wait {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                wait = true;
                // unchanged, or the store busy: look again after the pause
                if let Ok(c) = web.api.read(|s| s.alerts_changed()).await {
                    if Some(c) != last {
                        let ev = Event::default()
                            .event("alerts")
                            .data(format!("{{\"open\":{},\"changed\":{}}}", c.0, c.1));
                        return Some((Ok(ev), (web, Some(c))));
                    }
                }
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
