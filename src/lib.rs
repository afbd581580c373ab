//! zdel: a durable, rate-limited bulk deletion daemon for Zoho CRM.
//!
//! Data flows one way: enqueue → [`store`] → [`worker`] claims a batch →
//! [`zoho`] client → outcomes → [`store`]. Only the worker joins the store
//! and the Zoho client.

pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod http;
pub mod org;
pub mod sandbox;
pub mod status_model;
pub mod store;
mod sync;
pub mod worker;
pub mod zoho;
