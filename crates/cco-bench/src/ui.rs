//! The dashboard during a scheduling run (`--ui`): `cco_web` serves the run on loopback and
//! one client follows the board over server-sent events, as a browser left open on it would,
//! so the run's overhead is measured with the dashboard rendering every update. The client
//! only counts what arrives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cco::config::LoadedConfig;
use cco::OrchestratorHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A served dashboard and its watching client.
pub struct Watched {
    serving: cco_web::Serving,
    client: tokio::task::JoinHandle<()>,
    /// `event: main` updates received.
    updates: Arc<AtomicU64>,
}

impl Watched {
    pub async fn start(
        handle: &OrchestratorHandle,
        config: &LoadedConfig,
    ) -> Result<Watched, String> {
        let serving = cco_web::Dashboard::live(handle, config)
            .serve(cco_web::DEFAULT_ADDR)
            .await
            .map_err(|e| e.to_string())?;
        let addr = serving.addr();
        let updates = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&updates);
        let client = tokio::spawn(async move {
            let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                return;
            };
            let request = format!(
                "GET /sse?page=/board HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            );
            if stream.write_all(request.as_bytes()).await.is_err() {
                return;
            }
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let seen = buf[..n].windows(11).filter(|w| w == b"event: main").count();
                        counted.fetch_add(seen as u64, Ordering::Relaxed);
                    }
                }
            }
        });
        Ok(Watched {
            serving,
            client,
            updates,
        })
    }

    /// CPU time (this process) of one whole board page, measured over `n` requests made one
    /// after the other once the run has ended (nothing else runs then): what each update the
    /// client received cost, without the noise of the run around it.
    pub async fn board_cpu_ms(&self, n: u32) -> f64 {
        let addr = self.serving.addr();
        let before = crate::overhead::cpu_time();
        for _ in 0..n {
            let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                return 0.0;
            };
            let request =
                format!("GET /board HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            if stream.write_all(request.as_bytes()).await.is_err() {
                return 0.0;
            }
            let mut body = Vec::new();
            let _ = stream.read_to_end(&mut body).await;
        }
        (crate::overhead::cpu_time().saturating_sub(before)).as_secs_f64() * 1000.0
            / f64::from(n.max(1))
    }

    /// Stops the client and the dashboard; the number of board updates received.
    pub async fn stop(self) -> u64 {
        self.client.abort();
        self.serving.stop().await;
        self.updates.load(Ordering::Relaxed)
    }
}
