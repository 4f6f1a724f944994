//! The same `Item` as the demo IDL, coded the way each peer's own code generator
//! writes it (pilota-build for pilota/Volo, the Apache `thrift` compiler for the
//! `thrift` crate): the same sequence of protocol calls and the same container types,
//! so the benchmark measures each implementation's codec, not our transcription.

pub mod pilota_item;
pub mod thrift_item;
