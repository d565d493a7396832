//! `flowgate proxy` end to end: real sockets on loopback, backends the tests start, real
//! clients (reqwest with rustls, and raw TCP where a client must misbehave).

mod common;

mod acceleration;

mod forwarding;
mod health;
mod operations;
mod parking;
mod persistence;
mod protection;
mod tls;
