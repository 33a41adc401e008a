//! The fuzz engine behind pretrace's hostile-input checks: inputs are byte mutations of seed files
//! or structured inputs ([`gen`], [`gguf`]), each handed in process to a real loader
//! ([`targets`], one per file format pretrace reads); panics are caught and counted, a watchdog
//! ends a run on a hang, and the counting allocator ([`alloc::Counting`]) measures each input's
//! peak allocation against a bound of a small multiple of the input's size.

pub mod alloc;
pub mod engine;
pub mod gen;
pub mod gguf;
pub mod targets;
