//! syncd: receives LiveKit webhooks, makes them durable, and applies them to Postgres through
//! fred's SQL functions. Data flows one way: request → verify → spool → drain → SQL.

pub mod app;
pub mod config;
pub mod db;
pub mod drain;
pub mod egress;
pub mod jobs;
pub mod metrics;
pub mod recording;
pub mod s3;
pub mod server;
pub mod spool;
pub mod state;
pub mod webhook;
