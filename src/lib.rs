//! Verdict: a Lambda-native policy decision point for Cerbos-format policies.
//!
//! Data flows one way through the modules: [`config`] says where policies
//! live, [`store`] reads their bytes, [`policy`] parses them, [`compile`]
//! builds the rule index, [`engine`] answers checks against it, [`api`] is the
//! Cerbos JSON surface and [`lambda`] maps gateway events onto it.

pub mod api;
pub mod celx;
pub mod cli;
pub mod compile;
pub mod config;
pub mod engine;
pub mod lambda;
pub mod loader;
pub mod policy;
pub mod store;
