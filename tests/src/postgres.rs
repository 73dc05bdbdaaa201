//! PostgreSQL test support: the throwaway database `scripts/test` creates, databases of a
//! test's own for what needs a pristine one (migrations), an admin connection for breaking
//! things on purpose, and a TCP proxy that can cut the store off.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use event_processor_core::adapters::postgres::PostgresStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The variable `scripts/services/20-postgres.sh` exports.
pub const URL_VAR: &str = "EP_TEST_POSTGRES_URL";

/// The test database's URL. Panics (the test fails, it is never skipped) when the test
/// command did not provide one.
pub fn url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!("{URL_VAR} is not set: run the tests through scripts/test, which starts PostgreSQL")
    })
}

/// A store on the test database (migrated on open), with its own pool.
pub async fn store() -> Arc<PostgresStore> {
    Arc::new(store_at(&url()).await)
}

pub async fn store_at(url: &str) -> PostgresStore {
    event_processor_core::adapters::postgres::open(url)
        .await
        .expect("open the PostgreSQL store")
}

/// A plain connection to the test database, outside any pool.
pub async fn admin() -> tokio_postgres::Client {
    connect(&url()).await
}

/// A plain connection to the database at `url`, outside any pool.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// `url` naming another database on the same server, as the same user.
fn url_with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let query = path.split_once('?').map_or("", |(_, query)| query);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{scheme}://{authority}/{database}{query}")
}

/// A database of the test's own on the test server, for what needs one nobody else wrote to
/// (migrations, adopting an older layout). Dropped, with every connection still open to it,
/// when the value goes out of scope, also when the test fails.
pub struct FreshDatabase {
    name: String,
    url: String,
}

impl FreshDatabase {
    /// Creates an empty database with a name no other test uses.
    pub async fn create() -> Self {
        let name = format!("ep_fresh_{}", crate::uuid_simple());
        connect(&url_with_database(&url(), "postgres"))
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create a database for the test");
        Self {
            url: url_with_database(&url(), &name),
            name,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A plain connection to this database, outside any pool.
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let maintenance = url_with_database(&url(), "postgres");
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // `drop` may run on the test's runtime, which cannot block on a future: a thread of
        // its own, with a runtime of its own, can.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let (client, connection) =
                    tokio_postgres::connect(&maintenance, tokio_postgres::NoTls)
                        .await
                        .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                client
                    .batch_execute(&statement)
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "could not drop the test database {}: {dropped:?}",
                self.name
            );
        }
    }
}

/// Terminates every other backend connected to the test database; returns how many.
pub async fn terminate_other_backends(admin: &tokio_postgres::Client) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000))
             FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND backend_type = 'client backend'",
            &[],
        )
        .await
        .expect("terminate backends")
        .get(0)
}

/// The test database's URL with its host and port replaced by `addr`.
pub fn url_via(addr: SocketAddr) -> String {
    let url = url();
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let user = authority
        .rsplit_once('@')
        .map(|(user, _)| format!("{user}@"))
        .unwrap_or_default();
    format!("{scheme}://{user}{addr}/{path}")
}

/// A TCP proxy in front of the PostgreSQL server that a test can cut and restore: cut, it
/// drops every open connection and every new one, as a network partition would.
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    cut: bool,
    pipes: Vec<JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let accept = tokio::spawn({
            let state = state.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let mut state = state.lock().unwrap();
                    if state.cut {
                        continue; // dropped: the client sees the connection closed
                    }
                    state.pipes.push(tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    }));
                }
            }
        });
        Self {
            addr,
            state,
            accept,
        }
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut = true;
        for pipe in state.pipes.drain(..) {
            pipe.abort();
        }
    }

    /// Lets new connections through again.
    pub fn restore(&self) {
        self.state.lock().unwrap().cut = false;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// The PostgreSQL server's address, from the test URL (`127.0.0.1:5432` unless it says else).
pub fn server_addr() -> SocketAddr {
    let url = url();
    let rest = url.split_once("://").expect("a URL").1;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    std::net::ToSocketAddrs::to_socket_addrs(&host_port)
        .expect("resolve the PostgreSQL host")
        .next()
        .expect("an address")
}
