//! Connections kept out of the pool between calls, for the statements of plugins: the
//! pool's own acquire and release each cost a round trip to the server (sqlx pings a
//! connection before handing it out and again when it comes back), twice the statement a
//! plugin waits for. A kept connection also keeps its session, so a plugin's statement
//! timeout is set once per connection rather than in a transaction around every call.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Connection, pool::PoolConnection};

/// A connection unused for longer is checked (one ping) before it is used again: the
/// server may have closed it meanwhile.
const CHECK_AFTER: Duration = Duration::from_secs(1);

/// A few connections taken from the pool once and kept.
pub struct Kept {
    pool: AnyPool,
    idle: Arc<Mutex<Vec<Idle>>>,
    most: usize,
}

struct Idle {
    connection: PoolConnection<Any>,
    since: Instant,
    /// The session's statement timeout, once set.
    timeout: Option<Duration>,
    /// Whether the session was changed (a statement timeout set, or tried).
    changed: bool,
}

impl Kept {
    /// Keeps at most `most` connections of `pool` between calls. They are given back as
    /// soon as the pool starts closing (closing waits for every connection to come back).
    pub fn new(pool: AnyPool, most: usize) -> Self {
        let idle = Arc::new(Mutex::new(Vec::<Idle>::new()));
        // Outside a runtime (no pool can be used there either) nothing is kept.
        let most = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let (closing, kept) = (pool.close_event(), Arc::clone(&idle));
                runtime.spawn(async move {
                    closing.await;
                    kept.lock().unwrap_or_else(|e| e.into_inner()).clear();
                });
                most
            }
            Err(_) => 0,
        };
        Self { pool, idle, most }
    }

    /// A connection: a kept one, else one from the pool.
    pub async fn take(&self) -> Result<Lease<'_>, sqlx::Error> {
        let mut kept = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(idle) = &mut kept
            && idle.since.elapsed() > CHECK_AFTER
            && idle.connection.ping().await.is_err()
        {
            // Dropped, it goes back to the pool, which closes a dead connection.
            kept = None;
        }
        let idle = match kept {
            Some(idle) => idle,
            None => Idle {
                connection: self.pool.acquire().await?,
                since: Instant::now(),
                timeout: None,
                changed: false,
            },
        };
        Ok(Lease {
            kept: self,
            idle: Some(idle),
        })
    }

    /// Gives the kept connections up (under memory pressure).
    pub fn release(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// How many are kept now.
    pub fn len(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is kept now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A connection taken from [`Kept`]. It is kept again only when [`Lease::done`] says the
/// call ended cleanly; one that cannot be kept goes back to the pool with its session as
/// the pool gave it. After an error, or a call cut short, one whose session was changed is
/// closed rather than handed to anyone else.
pub struct Lease<'a> {
    kept: &'a Kept,
    /// Taken by [`Lease::done`].
    idle: Option<Idle>,
}

impl Lease<'_> {
    fn idle(&mut self) -> &mut Idle {
        // Only `done` takes it, and `done` consumes the lease.
        self.idle.as_mut().unwrap_or_else(|| unreachable!())
    }

    /// The connection.
    pub fn connection(&mut self) -> &mut AnyConnection {
        &mut self.idle().connection
    }

    /// Sets the session's statement timeout (Postgres' `statement_timeout`) unless it
    /// already is `timeout`.
    pub async fn statement_timeout(&mut self, timeout: Duration) -> Result<(), sqlx::Error> {
        let idle = self.idle();
        if idle.timeout == Some(timeout) {
            return Ok(());
        }
        idle.changed = true;
        idle.timeout = None;
        let set = format!("SET statement_timeout = {}", timeout.as_millis().max(1));
        sqlx::raw_sql(AssertSqlSafe(set))
            .execute(&mut *idle.connection)
            .await?;
        idle.timeout = Some(timeout);
        Ok(())
    }

    /// The call ended cleanly: the connection is kept for the next one, or, when as many
    /// are kept as may be, goes back to the pool with its session reset (one round trip;
    /// closing it instead would cost the next caller a new connection, and the server
    /// would count the closing one beside it for a moment).
    pub async fn done(mut self) {
        let Some(mut idle) = self.idle.take() else {
            return;
        };
        idle.since = Instant::now();
        let kept = self.kept;
        let mut idle = {
            let mut list = kept.idle.lock().unwrap_or_else(|e| e.into_inner());
            // Under the lock: the pool is marked closed before the watcher empties the list.
            if list.len() < kept.most && !kept.pool.is_closed() {
                list.push(idle);
                return;
            }
            idle
        };
        if idle.changed {
            let reset = sqlx::raw_sql(AssertSqlSafe("SET statement_timeout = DEFAULT"))
                .execute(&mut *idle.connection)
                .await;
            if reset.is_err() {
                idle.connection.close_on_drop();
            }
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // An error or a call cut short: a changed session must never reach the pool's
        // other users.
        if let Some(idle) = &mut self.idle
            && idle.changed
        {
            idle.connection.close_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Row, any::AnyPoolOptions};

    use super::*;

    async fn pool(url: &str) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPoolOptions::new()
            .max_connections(3)
            .connect(url)
            .await
            .expect("the test database")
    }

    /// The one value `sql` answers on `connection`.
    async fn one<T>(connection: &mut AnyConnection, sql: &'static str) -> T
    where
        T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
    {
        let row = sqlx::query(sql).fetch_one(connection).await.expect(sql);
        row.get(0)
    }

    async fn statement_timeout(connection: &mut AnyConnection) -> String {
        one(connection, "SHOW statement_timeout").await
    }

    async fn postgres() -> AnyPool {
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        pool(&url).await
    }

    #[tokio::test]
    async fn a_kept_connection_serves_again_and_never_holds_up_closing() {
        let folder = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kept.db?mode=rwc", folder.path().display());
        let pool = pool(&url).await;
        let kept = Kept::new(pool.clone(), 1);
        let mut lease = kept.take().await.unwrap();
        // A temporary table lives on its connection alone.
        sqlx::query("CREATE TEMP TABLE mark (x INTEGER)")
            .execute(lease.connection())
            .await
            .unwrap();
        lease.done().await;
        assert_eq!(kept.len(), 1);
        let mut again = kept.take().await.unwrap();
        sqlx::query("SELECT count(*) FROM mark")
            .fetch_one(again.connection())
            .await
            .expect("the same connection");
        again.done().await;
        let closing = tokio::time::timeout(Duration::from_secs(30), pool.close()).await;
        assert!(closing.is_ok(), "closing waited for a kept connection");
        assert!(kept.is_empty());
    }

    #[tokio::test]
    async fn the_statement_timeout_is_set_once_and_never_reaches_the_pool() {
        let pool = postgres().await;
        let kept = Kept::new(pool.clone(), 1);
        let mut lease = kept.take().await.unwrap();
        lease
            .statement_timeout(Duration::from_millis(250))
            .await
            .unwrap();
        assert_eq!(statement_timeout(lease.connection()).await, "250ms");
        lease.done().await;
        let mut again = kept.take().await.unwrap();
        assert_eq!(statement_timeout(again.connection()).await, "250ms");
        again
            .statement_timeout(Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(statement_timeout(again.connection()).await, "300ms");
        // A call cut short: the connection is not kept, and its session is closed with it.
        drop(again);
        assert!(kept.is_empty());
        for _ in 0..3 {
            let mut other = pool.acquire().await.unwrap();
            assert_eq!(statement_timeout(&mut other).await, "0");
        }
    }

    async fn backend(connection: &mut AnyConnection) -> i32 {
        one(connection, "SELECT pg_backend_pid()").await
    }

    #[tokio::test]
    async fn one_more_than_is_kept_goes_back_to_the_pool_reset_not_closed() {
        let pool = postgres().await;
        let kept = Kept::new(pool.clone(), 1);
        let (mut first, mut second) = (kept.take().await.unwrap(), kept.take().await.unwrap());
        for lease in [&mut first, &mut second] {
            lease
                .statement_timeout(Duration::from_millis(250))
                .await
                .unwrap();
        }
        let pid = backend(second.connection()).await;
        first.done().await;
        second.done().await;
        assert_eq!(kept.len(), 1);
        // sqlx returns a connection to its pool in a task of its own: wait for it. A
        // closed one would never be idle.
        let returned = tokio::time::timeout(Duration::from_secs(10), async {
            while pool.num_idle() < 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        assert!(
            returned.await.is_ok(),
            "the second connection went back idle"
        );
        let mut again = pool.acquire().await.unwrap();
        assert_eq!(
            backend(&mut again).await,
            pid,
            "the connection was not closed"
        );
        assert_eq!(statement_timeout(&mut again).await, "0");
    }
}
