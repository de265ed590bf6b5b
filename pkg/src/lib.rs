//! kindred: local Kubernetes clusters whose nodes are Docker containers.
//!
//! This crate holds everything a `kindred` command does; the CLI only parses arguments.
//! Data flows one way: cli -> this crate -> provider (the container runtime).

pub mod agent;
pub mod cache;
pub mod ci;
pub mod cluster;
pub mod config;
pub mod containerd;
pub mod defaults;
pub mod duration;
mod json_patch;
pub mod kubeadm;
pub mod kubeconfig;
pub mod patience;
pub mod process;
pub mod provider;
pub mod random;
pub mod registry;
pub mod ui;
