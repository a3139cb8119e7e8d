//! Who may start an export or an import: limits across all of them, so that no one client,
//! and no flood of requests, can take the service from the others.
//!
//! Each running export or import holds threads of tokio's blocking pool (a database source
//! and a file sink read and write on blocking threads). Were there no cap on how many run at
//! once, enough of them could take every blocking thread, and every later request (and
//! anything else needing one) would wait forever. So they are capped in all, below the pool's
//! size, and a request past the cap is refused at once (503) rather than queued. And one
//! client address may hold only a few of them at once (429 past that), so that a handful of
//! slow clients cannot hold every permit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The client address of a request, set by the accept loop.
#[derive(Clone, Copy, Debug)]
pub(super) struct ClientAddr(pub(super) IpAddr);

/// The limits across exports and imports.
#[derive(Debug)]
pub(super) struct Admission {
    running: Arc<Semaphore>,
    per_client: usize,
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// A request let in: its place is given back when this is dropped.
#[derive(Debug)]
pub(super) struct Admitted {
    _running: OwnedSemaphorePermit,
    client: IpAddr,
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Admission {
    pub(super) fn new(max_running: usize, per_client: usize) -> Self {
        Admission {
            running: Arc::new(Semaphore::new(max_running)),
            per_client,
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Lets a request from `client` in, or says why not, with the status to answer.
    pub(super) fn admit(&self, client: IpAddr) -> Result<Admitted, (StatusCode, String)> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let held = clients.get(&client).copied().unwrap_or(0);
        if held >= self.per_client {
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{client} already runs {held} exports and imports, the most one client may"
                ),
            ));
        }
        let Ok(running) = Arc::clone(&self.running).try_acquire_owned() else {
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "the service runs as many exports and imports as it may: try again shortly"
                    .to_owned(),
            ));
        };
        *clients.entry(client).or_insert(0) += 1;
        Ok(Admitted {
            _running: running,
            client,
            clients: Arc::clone(&self.clients),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = clients.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                clients.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_may_hold_a_few_and_all_together_the_cap() {
        let admission = Admission::new(3, 2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert_eq!(
            admission.admit(a).unwrap_err().0,
            StatusCode::TOO_MANY_REQUESTS
        );
        let _third = admission.admit(b).unwrap();
        assert_eq!(
            admission.admit(b).unwrap_err().0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        drop(first);
        assert!(
            admission.admit(b).is_ok(),
            "a place given back is taken again"
        );
        assert!(admission.clients.lock().unwrap().len() <= 2);
    }
}
