//! Test hosts for xvs: the classic LVS lab (client, director, real servers,
//! and a bridge or router where the mode needs one) built from network
//! namespaces and veths, web servers in the real servers, and curl/wrk from
//! the client.
//!
//! ```no_run
//! use xvs_testhost::{Mode, Topology};
//! let t = Topology::builder(Mode::Nat).servers(3).build()?;
//! let _web = t.start_web_servers(80)?;
//! let body = t.curl_from_client(&format!("http://{}/", t.plan().server_addr(0)))?;
//! assert_eq!(body, "rs0\n");
//! # Ok::<(), xvs_testhost::Error>(())
//! ```
//!
//! Everything needs root except the address plans ([`AddressPlan`]), and
//! fails with [`Error::NotRoot`] otherwise. Namespaces are named
//! `{prefix}-{pid}-{seq}-{role}` so tests can run in parallel; they are
//! deleted on drop (with every process left in them), and
//! [`sweep_stale`] deletes those of runs that were killed.

pub mod cmd;
mod error;
pub mod load;
pub mod netns;
pub mod plan;
pub mod topology;
pub mod web;

pub use cmd::{require_root, ChildGuard};
pub use error::{Error, Result};
pub use load::{curl, spread_script, wrk, WrkOptions, WrkResult};
pub use netns::{sweep_stale, Netns};
pub use plan::{AddressPlan, Cidr, Mode, Role};
pub use topology::{Topology, TopologyBuilder};
pub use web::{WebServer, WebServerKind};
