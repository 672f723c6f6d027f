//! `SHOW LIVE QUERIES` and `KILL LIVE QUERY 'id'` (admins only): the operator's view of the
//! subscriptions `system.live_queries` records.

use super::ddl::row;

use crate::{CoreError, Engine, QueryResult, Result};

impl Engine {
    pub(crate) fn show_live_queries(&self) -> Result<QueryResult> {
        let (mut all, _) = self.sql().live_queries().scan_lenient()?;
        all.sort_by(|a, b| a.live_id.cmp(&b.live_id));
        self.live().fill_changes(&mut all);
        let rows = all
            .into_iter()
            .map(|lq| {
                row(vec![
                    ("live_id", lq.live_id.into()),
                    ("user_id", lq.user_id.into()),
                    ("table_name", lq.table_name.into()),
                    ("query", lq.query.into()),
                    ("created_at", lq.created_at.into()),
                    ("changes", lq.changes.into()),
                    ("node", lq.node.into()),
                ])
            })
            .collect();
        Ok(QueryResult::rows(
            &[
                "live_id",
                "user_id",
                "table_name",
                "query",
                "created_at",
                "changes",
                "node",
            ],
            rows,
        ))
    }

    /// Ends the subscription: its client is told, and its row goes, so nothing (a drop, say)
    /// waits on it any more. A row no subscription of this process holds (left by a server
    /// that died) just goes.
    pub(crate) async fn kill_live_query(&self, live_id: &str) -> Result<QueryResult> {
        let _ddl = self.ddl_guard().await;
        let closed = self.live().close(
            &[live_id.to_string()],
            "killed",
            "an admin ended this subscription with KILL LIVE QUERY",
        );
        if !self.sql().live_queries().delete(live_id)? && closed == 0 {
            return Err(CoreError::NotFound(format!(
                "no live query '{live_id}'; SHOW LIVE QUERIES lists them"
            )));
        }
        Ok(QueryResult::done(1, format!("live query {live_id} killed")))
    }
}
