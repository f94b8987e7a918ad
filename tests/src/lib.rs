//! Test support shared by Ferrox's cross-crate tests.

pub mod reference;
